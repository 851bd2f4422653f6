"""Simulator benchmarks: scale, speed, memory, and memberlist's timing distributions.

    python benchmarks/bench_sim.py                    # everything except the 10k cluster
    python benchmarks/bench_sim.py --cases crash-10000
    python benchmarks/bench_sim.py --cases all
    python benchmarks/bench_sim.py --cases crash-10000-300 --tree /tmp/old-checkout

Cases (each runs in its own process, so its peak RSS is its own):

* ``crash-1000``: the shipped ``crash`` scenario (starts converged) with 1,000 LAN members
  for 300 simulated seconds in fast mode. Target: under 60 s of wall time on one core.
* ``crash-10000``: the same with 10,000 members for 60 s. Target: under 16 GiB peak RSS.
* ``crash-10000-300``: 10,000 members for 300 s (``swimpy sim crash --nodes 10000
  --duration 300s``). Target: at most 120 s of wall time and 3 GiB.
* ``crash-30000``: 30,000 members for 60 s. Target: under 16 GiB peak RSS.
* ``join-1000``: the shipped ``join`` scenario with 1,000 members for 60 s: a cluster
  forming by joins, with thousands of broadcasts in flight (the broadcast queue's and the
  duplicate-alive path's worst case).
* ``fidelity``: the same 100-member run in fast and wire mode (same trace, wall ratio).
* ``distributions``: crash detection and join/heal convergence over many seeds, on small
  clusters (what ``tests/test_sim_schedule.py`` bounds).
* ``scenarios``: every shipped scenario (except ``large``) with seeds 1..5, summarised.

Every crash case reports wall and CPU time (set-up and run), peak RSS and RSS per member.
``--tree PATH`` runs the cases against the swimpy in another checkout (a ``git worktree``
of an older commit, say) for before/after comparisons; ``bench_scale.py`` alternates
two trees.

Results are merged into ``benchmarks/results/sim.json`` (one key per case).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: the checkout whose swimpy is measured (``--tree``; the child processes inherit it)
TREE = Path(os.environ.get("SWIMPY_BENCH_TREE") or ROOT)
sys.path.insert(0, str(TREE))

from swimpy import sim  # noqa: E402
from swimpy.sim.runner import percentile  # noqa: E402
from swimpy.sim.simulation import Simulation  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "sim.json"
DEFAULT_CASES = ("crash-1000", "fidelity", "distributions", "scenarios")
ALL_CASES = ("crash-1000", "crash-10000", "crash-10000-300", "crash-30000", "join-1000",
             "fidelity", "distributions", "scenarios")


def peak_rss_mib() -> float:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(ru / (1024 * 1024) if sys.platform == "darwin" else ru / 1024, 1)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
    }


def dist(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "min": round(min(xs), 4),
        "mean": round(statistics.mean(xs), 4),
        "median": round(percentile(xs, 50), 4),
        "p90": round(percentile(xs, 90), 4),
        "p99": round(percentile(xs, 99), 4),
        "max": round(max(xs), 4),
    }


# ------------------------------------------------------------------------ cases

#: One member joins a converged cluster at 10 s.
JOIN_ONE = """
nodes = {n}
duration = "75s"
[start]
absent = "newcomer"
[groups]
newcomer = {{ count = 1 }}
[network]
latency = {{ dist = "uniform", low = "0.2ms", high = "1ms" }}
[[events]]
at = "10s"
action = "join"
group = "newcomer"
"""


def case_crash(nodes: int, duration: float, scenario: str = "crash") -> dict[str, Any]:
    sc = sim.load_scenario(scenario).with_overrides(nodes=nodes, duration=duration)
    base_rss = peak_rss_mib()  # the interpreter with swimpy imported
    t0, c0 = time.perf_counter(), time.process_time()
    s = Simulation(sc, 1)
    t1, c1 = time.perf_counter(), time.process_time()
    setup_rss = peak_rss_mib()
    r = s.run()
    t2, c2 = time.perf_counter(), time.process_time()
    peak = peak_rss_mib()
    return {
        "scenario": scenario,
        "nodes": nodes,
        "simulated_seconds": duration,
        "fidelity": sc.fidelity,
        "start": sc.start.mode,
        "tree": str(TREE),
        "wall_seconds": round(t2 - t0, 2),
        "setup_seconds": round(t1 - t0, 2),
        "run_seconds": round(t2 - t1, 2),
        # CPU time of this process: less disturbed than wall time by other jobs sharing
        # the cores (not undisturbed: they still share caches and memory bandwidth)
        "cpu_seconds": round(c2 - c0, 2),
        "setup_cpu_seconds": round(c1 - c0, 2),
        "run_cpu_seconds": round(c2 - c1, 2),
        "events": r["events_processed"],
        "events_per_second": round(r["events_processed"] / (t2 - t1)),
        "events_per_cpu_second": round(r["events_processed"] / max(c2 - c1, 1e-9)),
        "peak_rss_mib": peak,
        "rss_after_setup_mib": setup_rss,
        "rss_before_setup_mib": base_rss,
        # (peak RSS - the interpreter's) / members: what one more member costs
        "rss_per_member_kib": round((peak - base_rss) * 1024 / nodes, 1),
        "setup_rss_per_member_kib": round((setup_rss - base_rss) * 1024 / nodes, 1),
        "convergence_s": r["convergence_s"],
        "detections": r["detections"],
        "false_suspicions": r["false_suspicions"],
        "packets": r["packets"],
        "streams": r["streams"],
        "messages_per_node_per_s": r["messages_per_node_per_s"],
        "bytes_per_node_per_s": r["bytes_per_node_per_s"],
        "trace_sha256": r["trace_sha256"],
    }


def case_fidelity() -> dict[str, Any]:
    sc = sim.load_scenario("crash").with_overrides(nodes=100, duration=60)
    out: dict[str, Any] = {"scenario": "crash", "nodes": 100, "simulated_seconds": 60}
    for mode in ("fast", "wire"):
        r = sim.run(sc, seed=1, fidelity=mode)
        out[mode] = {
            "wall_seconds": r["wall_seconds"],
            "bytes_per_node_per_s": r["bytes_per_node_per_s"],
            "bytes_mode": r["bytes_mode"],
            "trace_sha256": r["trace_sha256"],
        }
    out["same_trace"] = out["fast"]["trace_sha256"] == out["wire"]["trace_sha256"]
    out["wire_over_fast"] = round(out["wire"]["wall_seconds"] / out["fast"]["wall_seconds"], 2)
    return out


def case_distributions() -> dict[str, Any]:
    from swimpy.core.lifeguard import suspicion_timeout
    from swimpy.profiles import lan

    cfg = lan()
    out: dict[str, Any] = {"profile": "lan", "probe_interval": cfg.probe_interval,
                           "probe_timeout": cfg.probe_timeout}
    for n, seeds in ((5, 300), (20, 200), (100, 100)):
        sc = sim.load_scenario("crash").with_overrides(nodes=n, duration=80)
        first_s, first_d, all_d, gap = [], [], [], []
        for seed in range(seeds):
            d = next(iter(sim.run(sc, seed=seed)["detections"].values()))
            first_s.append(d["first_suspect_s"])
            first_d.append(d["first_dead_s"])
            all_d.append(d["all_dead_s"])
            gap.append(d["first_dead_s"] - d["first_suspect_s"])
        lo = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
        out[f"crash_n{n}"] = {
            "seeds": seeds,
            "suspicion_min_s": lo,
            "suspicion_max_s": lo * cfg.suspicion_max_timeout_mult,
            "first_suspect_s": dist(first_s),
            "first_suspect_in_probe_intervals_mean": round(
                statistics.mean(first_s) / cfg.probe_interval, 3),
            "first_dead_s": dist(first_d),
            "dead_after_first_suspect_s": dist(gap),
            "all_dead_s": dist(all_d),
        }
    for n in (5, 20):
        one = sim.parse_scenario(JOIN_ONE.format(n=n), source=f"join-one-n{n}")
        conv = [sim.run(one, seed=s)["convergence_s"] for s in range(300)]
        out[f"join_one_into_converged_n{n}"] = {
            "seeds": 300,
            "push_pull_interval_s": cfg.push_pull_interval,
            "never": sum(1 for c in conv if c is None),
            "over_3s": sum(1 for c in conv if c is not None and c > 3),
            "convergence_after_join_s": dist([c for c in conv if c is not None]),
        }
    join = sim.load_scenario("join")
    conv = [sim.run(join, seed=s)["convergence_s"] for s in range(200)]
    out["join_forming_n20"] = {
        "seeds": 200,
        "push_pull_interval_s": cfg.push_pull_interval,
        "never": sum(1 for c in conv if c is None),
        "over_3s": sum(1 for c in conv if c is not None and c > 3),
        "convergence_after_last_start_s": dist([c for c in conv if c is not None]),
    }
    heal = sim.load_scenario("partition-half")
    conv = [sim.run(heal, seed=s)["convergence_s"] for s in range(100)]
    out["partition_half_n20_heal"] = {
        "seeds": 100,
        "reconnect_interval_s": cfg.reconnect_interval,
        "never": sum(1 for c in conv if c is None),
        "convergence_after_heal_s": dist([c for c in conv if c is not None]),
    }
    return out


def case_scenarios() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sim.list_scenarios():
        if name == "large":
            continue
        r = sim.run(name, seed=1, runs=5)
        out[name] = {
            "nodes": r["runs"][0]["nodes"],
            "profile": r["runs"][0]["profile"],
            "seeds": "1..5",
            "summary": r["summary"],
        }
    return out


CASES: dict[str, Any] = {
    "crash-1000": lambda: case_crash(1000, 300.0),
    "crash-10000": lambda: case_crash(10000, 60.0),
    "crash-10000-300": lambda: case_crash(10000, 300.0),
    "crash-30000": lambda: case_crash(30000, 60.0),
    "join-1000": lambda: case_crash(1000, 60.0, "join"),
    "fidelity": case_fidelity,
    "distributions": case_distributions,
    "scenarios": case_scenarios,
}


def _num(x: Any, fmt: str = "{:.3g}") -> str:
    return "never" if x is None else fmt.format(x)


def markdown(results: dict[str, Any]) -> str:
    """The tables of docs/simulator.md, from the results file."""
    lines: list[str] = []
    sc = results.get("scenarios", {})
    if sc:
        lines += [
            "| scenario | members | convergence (s) | first suspect / dead / all dead (s) "
            "| all left (s) | false susp. / deaths | partition susp. / deaths "
            "| msgs / member / s | bytes / member / s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, v in sc.items():
            if not isinstance(v, dict) or "summary" not in v:
                continue
            s = v["summary"]

            def med(k: str, s: dict[str, Any] = s) -> Any:
                return s.get(k, {}).get("median")

            det = "-"
            if med("first_dead_s") is not None or med("first_suspect_s") is not None:
                det = " / ".join(_num(med(k)) for k in
                                 ("first_suspect_s", "first_dead_s", "all_dead_s"))
            left = _num(med("all_left_s")) if "all_left_s" in s else "-"
            lines.append(
                f"| {name} | {v['nodes']} ({v['profile']}) | {_num(med('convergence_s'))} "
                f"| {det} | {left} "
                f"| {_num(med('false_suspicions'), '{:g}')} / {_num(med('false_deaths'), '{:g}')} "
                f"| {_num(med('partition_suspicions'), '{:g}')} / "
                f"{_num(med('partition_deaths'), '{:g}')} "
                f"| {_num(med('messages_per_node_per_s'))} | {_num(med('bytes_per_node_per_s'))} |"
            )
        lines.append("")
    rows = [results[k] for k in ("crash-1000", "crash-10000", "crash-10000-300", "crash-30000")
            if k in results]
    if rows:
        lines += [
            "| run | wall time | CPU time | peak RSS (per member) | events | events/s "
            "| detection (first suspect / dead / all dead) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            d = next(iter(r["detections"].values()))
            cpu = f"{r['cpu_seconds']:.1f} s" if "cpu_seconds" in r else "-"
            per = (f" ({r['rss_per_member_kib']:.0f} KiB)" if "rss_per_member_kib" in r
                   else "")
            lines.append(
                f"| {r['nodes']:,} members, {r['simulated_seconds']:g} s, one crash, fast, "
                f"converged start | {r['wall_seconds']:.1f} s (setup {r['setup_seconds']:.1f} s) "
                f"| {cpu} | {r['peak_rss_mib'] / 1024:.2f} GiB{per} | {r['events']:,} "
                f"| {r['events_per_second']:,} | {d['first_suspect_s']:.2f} / "
                f"{d['first_dead_s']:.2f} / {d['all_dead_s']:.2f} s |"
            )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES),
                    help=f"comma-separated, or 'all' ({', '.join(ALL_CASES)})")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tree", type=Path,
                    help="measure the swimpy of this checkout (default: this one)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--markdown", action="store_true",
                    help="print the docs tables from the results file and exit")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.out.read_text())))
        return 0
    if args.child:
        print(json.dumps(CASES[args.child]()))
        return 0
    cases = ALL_CASES if args.cases == "all" else tuple(args.cases.split(","))
    env = dict(os.environ)
    if args.tree is not None:
        env["SWIMPY_BENCH_TREE"] = str(args.tree.resolve())
    results: dict[str, Any] = {}
    if args.out.exists():
        results = json.loads(args.out.read_text())
    for case in cases:
        if case not in CASES:
            ap.error(f"unknown case {case!r}; choose from {', '.join(ALL_CASES)}")
        print(f"running {case} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", case],
                              capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        res = json.loads(proc.stdout)
        res["bench_wall_seconds"] = round(time.perf_counter() - t0, 1)
        res["machine"] = machine()
        res["date"] = time.strftime("%Y-%m-%d")
        results[case] = res
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        brief = {k: res[k] for k in ("wall_seconds", "peak_rss_mib") if k in res}
        print(f"  done in {res['bench_wall_seconds']} s {brief}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
