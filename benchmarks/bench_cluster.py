"""swimpy, Go Serf and kinship side by side on real processes (issue 10).

Usage::

    python benchmarks/bench_cluster.py                  # quick set: N = 8, 10 kills (~12 min)
    python benchmarks/bench_cluster.py --full           # N = 8 and 32, 50 kills each (> 1 h)
    python benchmarks/bench_cluster.py --sizes 4 --kills 2 --window 10 --systems swimpy

For each N and each system, N member processes on 127.0.0.1: ``swimpy agent`` (lan
profile), ``serf agent`` (its defaults are memberlist's LAN config) and kinship members
(``benchmarks/cluster/kinship_member.py`` over kinship's blocking API, ``Config.lan()``),
one system after the other so they never compete for the cores. Per cluster:

* **join convergence**: the first member starts, the others join through it; the time
  from the last member's start until every member has seen every other join;
* **steady state** after ``--settle`` s: over a ``--window`` s window (>= 60 s for the
  published numbers), CPU time per process (``/proc/PID/stat``, % of one core), RSS, and
  datagrams and bytes per member per second from nftables counters per port
  (``cluster/nftcount.py``; memberlist-level UDP payload, TCP with headers);
* **kills**: ``--kills`` times, SIGKILL one member (round robin, after a seeded random
  delay of up to one probe interval), record when each survivor first reports it dead and
  the first suspicion anywhere, restart it under the same name and ports, and wait until
  every member sees every other alive again;
* **false suspicions**: suspicion episodes and dead reports about running members over
  the whole run.

During the window a capture on ``lo`` (``cluster/sniff.py``, root) decodes every packet
with ``swimpy.wire``, so Serf's own additions show separately: coordinates in acks, its
user messages, its state in push/pull. (``serf agent`` parses ``disable_coordinates``
but never hands it to Serf, so coordinates cannot be switched off for a comparison.) Event times are the
``time.monotonic()`` at which each output line reached the benchmark (one clock for all
systems; see ``cluster/adapters.py``). The simulator predicts the same crash at the same N
(``cluster/predict.py``: lan profile, loopback latency, ``--sim-seeds`` seeds) and its
median time to all-dead is set beside each real one.

Writes ``benchmarks/results/cluster.json`` and ``cluster.md`` (``--out``, ``--report``),
plots (PNG and SVG, with matplotlib) into ``benchmarks/results/cluster/``; ``--docs-img``
also copies them to ``docs/img/``. Needs ``serf`` (``apt-get install serf``),
``nft`` and root (``apt-get install nftables``), and ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
_HERE = Path(__file__).resolve().parent
for _p in (_ROOT, _HERE):
    if str(_p) not in sys.path:  # run from a checkout without installing
        sys.path.insert(0, str(_p))

from bench_wire import machine_info  # noqa: E402
from cluster import adapters, nftcount, report  # noqa: E402
from cluster.predict import predict  # noqa: E402
from cluster.run import log, run_cluster  # noqa: E402
from cluster.stats import bootstrap_median_diff, relative_error  # noqa: E402
from procstat import loadavg  # noqa: E402

RESULTS = _ROOT / "benchmarks" / "results"
DEFAULT_OUT = RESULTS / "cluster.json"
DEFAULT_REPORT = RESULTS / "cluster.md"
DEFAULT_PLOTS = RESULTS / "cluster"
DOCS_IMG = _ROOT / "docs" / "img"
SYSTEM_ORDER = ("swimpy", "serf", "kinship")
#: the simulator must be within this of the real medians (issue 10)
SIM_TOLERANCE = 0.10


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        import kinship

        out["kinship"] = kinship.__version__
    except ImportError:
        out["kinship"] = None
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "serf"],
                              capture_output=True, text=True, check=False, timeout=10)
        out["serf_package"] = done.stdout.strip() or None
    except FileNotFoundError:
        out["serf_package"] = None
    if shutil.which("serf"):
        done = subprocess.run(["serf", "version"], capture_output=True, text=True,
                              check=False, timeout=10)
        out["serf_version_output"] = done.stdout.strip().splitlines()[:1]
    import swimpy

    out["swimpy"] = getattr(swimpy, "__version__", None)
    return out


def missing_tools(systems: list[str]) -> list[str]:
    problems = []
    if "serf" in systems and shutil.which("serf") is None:
        problems.append("serf is not installed (apt-get install serf)")
    if "kinship" in systems:
        try:
            import kinship  # noqa: F401
        except ImportError:
            problems.append("kinship is not installed (pip install -e '.[bench]')")
    return problems


def compare(size: dict[str, Any], resamples: int) -> dict[str, Any]:
    """The issue's goals and the simulator's errors at one N."""
    out: dict[str, Any] = {}
    det = {s: size[s]["detection"] for s in SYSTEM_ORDER if s in size}
    medians = {s: d["all_dead_s"].get("median") for s, d in det.items()}
    out["median_all_dead_s"] = medians
    sim = size.get("sim")
    if sim is not None:
        errs = {}
        for s in ("swimpy", "serf"):
            if medians.get(s):
                err = relative_error(sim["all_dead_s"]["median"], medians[s])
                errs[s] = {"relative_error": round(err, 4),
                           "within_tolerance": abs(err) <= SIM_TOLERANCE}
        out["sim_vs_real"] = errs
        plain = size.get("sim_plain")
        if plain is not None:
            out["sim_plain_vs_real"] = {
                s: round(relative_error(plain["all_dead_s"]["median"], medians[s]), 4)
                for s in ("swimpy", "serf") if medians.get(s)}
        # where a difference comes from: the time to the first suspicion (the probe
        # schedule) and the rest (the suspicion timeout and its confirmations, gossip)
        parts = {}
        for s in ("swimpy", "serf"):
            d = det.get(s)
            if not d or not d["first_suspect_s"].get("n") or not d["all_dead_s"].get("n"):
                continue
            spans = [r["all_dead_s"] - r["first_suspect_s"] for r in size[s]["kills"]
                     if r["all_dead_s"] is not None and r["first_suspect_s"] is not None]
            sim_spans = sim.get("suspect_to_all_dead_values", [])
            parts[s] = {
                "first_suspect_median_real": d["first_suspect_s"]["median"],
                "first_suspect_median_sim": sim["first_suspect_s"]["median"],
                "suspect_to_all_dead_median_real": (round(statistics.median(spans), 3)
                                                    if spans else None),
                "suspect_to_all_dead_median_sim": (round(statistics.median(sim_spans), 3)
                                                   if sim_spans else None),
            }
        out["sim_vs_real_parts"] = parts
    if "swimpy" in det and "serf" in det:
        a = det["swimpy"]["all_dead_values"]
        b = det["serf"]["all_dead_values"]
        if a and b:
            boot = bootstrap_median_diff(a, b, resamples=resamples)
            out["all_dead_median_diff_swimpy_minus_serf"] = {
                k: round(v, 4) if isinstance(v, float) else v for k, v in boot.items()}
            # the goal: the interval includes 0 or favours swimpy (lies below 0)
            out["goal_detection"] = boot["low"] <= 0
    steady = {s: size[s]["steady"] for s in SYSTEM_ORDER if s in size}
    if "swimpy" in steady and "serf" in steady:
        cpu_s = steady["swimpy"]["cpu_percent_per_member"]["mean"]
        cpu_g = steady["serf"]["cpu_percent_per_member"]["mean"]
        out["cpu_ratio_swimpy_to_serf"] = round(cpu_s / cpu_g, 3) if cpu_g else None
        out["goal_cpu"] = cpu_s <= cpu_g
        ts, tg = steady["swimpy"]["traffic"], steady["serf"]["traffic"]
        if ts and tg:
            out["bytes_ratio_swimpy_to_serf"] = round(
                ts["bytes_per_member_s"] / tg["bytes_per_member_s"], 3)
            out["goal_bytes"] = ts["bytes_per_member_s"] <= tg["bytes_per_member_s"]
    if "kinship" in steady and "serf" in steady:
        cpu_k = steady["kinship"]["cpu_percent_per_member"]["mean"]
        cpu_g = steady["serf"]["cpu_percent_per_member"]["mean"]
        out["cpu_ratio_kinship_to_serf"] = round(cpu_k / cpu_g, 3) if cpu_g else None
    cap = (steady.get("serf") or {}).get("capture")
    if cap:
        pm = cap["per_member_s"]
        out["serf_additions"] = {
            "coordinates_in_acks_bytes_per_member_s": pm["ack_payload_bytes"],
            "serf_user_messages_bytes_per_member_s": pm["user_msg_bytes"],
            "push_pull_user_state_bytes_per_member_s_decoded": pm[
                "push_pull_user_state_bytes"],
            "push_pull_user_state_share": cap["tcp"]["user_state_share"],
        }
        tg = steady["serf"]["traffic"]
        if tg:
            # UDP: acks and user messages travel uncompressed in these packets (the
            # capture's outer layers say so), so their payload bytes are wire bytes. TCP:
            # push/pulls are LZW-compressed, so Serf's share of the wire bytes is its
            # share of the decoded message.
            udp_ml = (tg["udp_payload_bytes_per_member_s"] - pm["ack_payload_bytes"]
                      - pm["user_msg_bytes"])
            tcp_ml = tg["tcp_bytes_per_member_s"] * (1 - cap["tcp"]["user_state_share"])
            ml = udp_ml + tcp_ml
            out["serf_additions"].update({
                "memberlist_level_udp_bytes_per_member_s": round(udp_ml, 1),
                "memberlist_level_tcp_bytes_per_member_s": round(tcp_ml, 1),
                "memberlist_level_bytes_per_member_s": round(ml, 1),
                "outer_layers": cap["udp"]["outer"],
            })
            ts = steady["swimpy"]["traffic"] if "swimpy" in steady else None
            if ts and ml > 0:
                out["bytes_ratio_swimpy_to_serf_memberlist_level"] = round(
                    ts["bytes_per_member_s"] / ml, 3)
                if udp_ml > 0:
                    out["udp_bytes_ratio_swimpy_to_serf_memberlist_level"] = round(
                        ts["udp_payload_bytes_per_member_s"] / udp_ml, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true",
                        help="N = 8 and 32, 50 kills each (over an hour)")
    parser.add_argument("--sizes", help="comma-separated cluster sizes (quick 8; full 8,32)")
    parser.add_argument("--kills", type=int, help="kills per cluster (quick 10; full 50)")
    parser.add_argument("--window", type=float, default=60.0,
                        help="steady-state window, s (60; publish only >= 60)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds between convergence and the window (10)")
    parser.add_argument("--systems", default=",".join(SYSTEM_ORDER),
                        help="comma-separated subset of swimpy,serf,kinship")
    parser.add_argument("--no-capture", action="store_true",
                        help="skip the packet capture that splits Serf's additions out")
    parser.add_argument("--sim-seeds", type=int, default=400,
                        help="simulator runs per N (400)")
    parser.add_argument("--seed", type=int, default=10, help="kill timing and bootstrap seed")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="JSON results (benchmarks/results/cluster.json)")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT,
                        help="Markdown report (benchmarks/results/cluster.md)")
    parser.add_argument("--plots", type=Path, default=DEFAULT_PLOTS,
                        help="directory for the PNG and SVG plots "
                        "(benchmarks/results/cluster/)")
    parser.add_argument("--docs-img", action="store_true",
                        help="also copy the plots to docs/img/ (cluster-*.png/svg)")
    parser.add_argument("--logs", type=Path, help="keep the members' logs here")
    parser.add_argument("--from-json", type=Path, metavar="PATH",
                        help="run nothing: redo the comparisons, report and plots of a "
                        "results file (the simulator's runs are repeated if it lacks them)")
    args = parser.parse_args(argv)
    if args.from_json:
        return rerender(args)

    mode = "full" if args.full else "quick"
    sizes = ([int(x) for x in args.sizes.split(",")] if args.sizes
             else ([8, 32] if args.full else [8]))
    kills = args.kills if args.kills is not None else (50 if args.full else 10)
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in adapters.SYSTEMS:
            parser.error(f"unknown system {s!r}; choose from {', '.join(SYSTEM_ORDER)}")
    problems = missing_tools(systems)
    if problems:
        parser.error("; ".join(problems))
    why = nftcount.available()
    if why:
        log(f"no traffic counters: {why}")
    nft = nftcount.NftCounters() if why is None else None
    capture = not args.no_capture and os.geteuid() == 0
    if not args.no_capture and not capture:
        log("no packet capture: it needs root (a raw socket on lo)")

    started = time.monotonic()
    results: dict[str, Any] = {
        "benchmark": "cluster",
        "mode": mode,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": versions(),
        "settings": {"sizes": sizes, "kills": kills, "window_s": args.window,
                     "settle_s": args.settle, "systems": systems, "sim_seeds": args.sim_seeds,
                     "seed": args.seed, "resamples": args.resamples,
                     "traffic_counters": why or "nftables per port"},
        "loadavg_start": loadavg(),
        "sizes": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench_cluster-"))
    log_root = args.logs or tmp
    try:
        for n in sizes:
            size: dict[str, Any] = {}
            results["sizes"][str(n)] = size
            log(f"simulator: crash at N={n}, {args.sim_seeds} seeds")
            t0 = time.monotonic()
            size["sim"] = predict(n, args.sim_seeds, model="cycle")
            size["sim_plain"] = predict(n, args.sim_seeds, model="plain")
            size["sim"]["wall_s"] = round(time.monotonic() - t0, 1)
            plan = [(s, adapters.SYSTEMS[s], kills) for s in systems]
            for i, (key, system, k) in enumerate(plan):
                log(f"{key}: N={n}, {k} kills, window {args.window:g} s")
                t0 = time.monotonic()
                size[key] = run_cluster(system, n, kills=k, window=args.window,
                                        settle=args.settle, seed=args.seed + 1000 * n + i,
                                        log_dir=log_root / f"{key}-{n}", nft=nft,
                                        sniff=capture)
                size[key]["wall_s"] = round(time.monotonic() - t0, 1)
            size["compare"] = compare(size, args.resamples)
    finally:
        if nft is not None:
            nft.remove()
        if args.logs is None:
            shutil.rmtree(tmp, ignore_errors=True)
    results["wall_s"] = round(time.monotonic() - started, 1)
    results["loadavg_end"] = loadavg()
    return write(results, args)


def rerender(args: argparse.Namespace) -> int:
    """``--from-json``: the comparisons, report and plots again, from stored results."""
    stored: dict[str, Any] = json.loads(args.from_json.read_text())
    for n, size in stored["sizes"].items():
        if size.get("sim", {}).get("model") != "cycle" or "sim_plain" not in size:
            log(f"simulator: crash at N={n}, {stored['settings']['sim_seeds']} seeds")
            size["sim"] = predict(int(n), stored["settings"]["sim_seeds"], model="cycle")
            size["sim_plain"] = predict(int(n), stored["settings"]["sim_seeds"],
                                        model="plain")
        size["compare"] = compare(size, stored["settings"]["resamples"])
    return write(stored, args)


def write(results: dict[str, Any], args: argparse.Namespace) -> int:
    """The JSON results, the plots and the Markdown report."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    plots = report.plots(results, args.plots)
    if args.docs_img and plots:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        for p in plots:
            shutil.copy(p, DOCS_IMG / p.name)
    args.report.write_text(report.markdown(results, plots, args.report.parent))
    print(report.summary_table(results))
    print(f"\nwrote {args.out}, {args.report}" + (f" and {len(plots)} plots in {args.plots}"
                                                  if plots else " (no plots)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
