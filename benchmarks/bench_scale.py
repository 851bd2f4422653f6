"""Before/after comparisons for the simulator's scale work: two checkouts, alternated.

    git worktree add /tmp/scale-before <older commit>
    python benchmarks/bench_scale.py --before /tmp/scale-before                 # timing
    python benchmarks/bench_scale.py --before /tmp/scale-before --pairs 3 \\
        --cases crash-1000,crash-10000-300
    python benchmarks/bench_scale.py --before /tmp/scale-before --distributions  # 20 seeds
    python benchmarks/bench_scale.py --before /tmp/scale-before --cases distributions --pairs 1
    python benchmarks/bench_scale.py --before /tmp/scale-before --setup-memory 30000

Timing: each case of ``bench_sim.py`` runs in its own process, against the old tree and
then this one, ``--pairs`` times (old, new, old, new, ...), so that whatever else the
machine runs meanwhile disturbs both alike; every run is kept, with the load average
when it started. Wall time is what the goals are stated in; CPU time (``cpu_seconds``)
is less disturbed by other jobs sharing the cores.

Distributions: a change that draws random numbers differently (the probe order) changes
traces, so the old and new code are compared on the distributions of what the simulator
measures: detection and convergence of the ``crash`` scenario over many seeds, with the
two-sample Kolmogorov-Smirnov statistic for each (``--distributions``), and
``bench_sim.py``'s ``distributions`` case (hundreds of seeds on 5-100 members) run
against both trees (``--cases distributions``).

Set-up memory (``--setup-memory N``): where the old code cannot run at all (30,000
members need more memory than the machine has), its memory per member is measured over
the first ``--engines`` engines of an ``N``-member converged set-up (each engine's table
and probe order, the part that grows with ``N``) and projected to ``N`` engines.

Results go to ``benchmarks/results/scale.json`` (merged by key).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_SIM = ROOT / "benchmarks" / "bench_sim.py"
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
TIMING_KEYS = ("wall_seconds", "setup_seconds", "run_seconds", "cpu_seconds",
               "setup_cpu_seconds", "run_cpu_seconds", "peak_rss_mib", "rss_after_setup_mib",
               "rss_per_member_kib", "events", "events_per_second", "events_per_cpu_second")
DIST_METRICS = ("first_suspect_s", "first_dead_s", "all_dead_s", "convergence_s",
                "false_suspicions", "messages_per_node_per_s", "bytes_per_node_per_s")


def run_case(tree: Path, case: str) -> dict[str, Any]:
    env = {**os.environ, "SWIMPY_BENCH_TREE": str(tree)}
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(BENCH_SIM), "--child", case], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"],
                "returncode": proc.returncode, "load_avg_1m_at_start": load,
                "wall_seconds_until_failure": round(time.perf_counter() - t0, 1)}
    res: dict[str, Any] = json.loads(proc.stdout)
    if "nodes" not in res:  # not a timing case (``distributions``): keep all of it
        res["load_avg_1m_at_start"] = round(load, 2)
        return res
    out = {k: res[k] for k in TIMING_KEYS if k in res}
    d: dict[str, Any] = next(iter(res.get("detections", {}).values()), {})
    out["detection"] = {k: d.get(k) for k in ("first_suspect_s", "first_dead_s", "all_dead_s")}
    out["convergence_s"] = res.get("convergence_s")
    out["trace_sha256"] = res.get("trace_sha256")
    out["load_avg_1m_at_start"] = round(load, 2)
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    out: dict[str, Any] = {"runs": len(runs), "failed": len(runs) - len(ok)}
    for k in ("wall_seconds", "cpu_seconds", "setup_seconds", "peak_rss_mib",
              "rss_per_member_kib"):
        xs = [r[k] for r in ok if k in r]
        if xs:
            out[k] = {"min": min(xs), "median": round(statistics.median(xs), 2), "max": max(xs)}
    return out


def timing(before: Path, after: Path, cases: list[str], pairs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for case in cases:
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for i in range(pairs):
            for label, tree in (("before", before), ("after", after)):
                print(f"{case} pair {i + 1}/{pairs}: {label} ...", file=sys.stderr, flush=True)
                r = run_case(tree, case)
                runs[label].append(r)
                brief = {k: r.get(k) for k in ("wall_seconds", "cpu_seconds", "peak_rss_mib",
                                               "error")}
                print(f"  {brief}", file=sys.stderr, flush=True)
        out[case] = {
            "before": {"tree": str(before), "runs": runs["before"],
                       "summary": summary(runs["before"])},
            "after": {"tree": str(after), "runs": runs["after"],
                      "summary": summary(runs["after"])},
        }
    return out


# ------------------------------------------------------------------ distributions

_DIST_CHILD = r"""
import json, sys
from swimpy import sim
nodes, seeds, first, duration = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sc = sim.load_scenario("crash").with_overrides(nodes=nodes)
if duration != "-":
    sc = sc.with_overrides(duration=float(duration))
out = []
for seed in range(first, first + seeds):
    r = sim.run(sc, seed=seed)
    d = next(iter(r["detections"].values()))
    out.append({"seed": seed, "first_suspect_s": d["first_suspect_s"],
                "first_dead_s": d["first_dead_s"], "all_dead_s": d["all_dead_s"],
                "convergence_s": r["convergence_s"], "false_suspicions": r["false_suspicions"],
                "messages_per_node_per_s": r["messages_per_node_per_s"],
                "bytes_per_node_per_s": r["bytes_per_node_per_s"]})
print(json.dumps(out))
"""


def _ks(a: list[float], b: list[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic D and its asymptotic p-value."""
    xs = sorted(set(a) | set(b))
    sa, sb = sorted(a), sorted(b)
    d = 0.0
    ia = ib = 0
    for x in xs:
        while ia < len(sa) and sa[ia] <= x:
            ia += 1
        while ib < len(sb) and sb[ib] <= x:
            ib += 1
        d = max(d, abs(ia / len(sa) - ib / len(sb)))
    if d == 0:
        return 0.0, 1.0
    ne = len(a) * len(b) / (len(a) + len(b))
    lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return round(d, 4), round(min(1.0, max(0.0, p)), 4)


def _quantiles(xs: list[float]) -> dict[str, Any]:
    s = sorted(xs)

    def q(p: float) -> float:
        pos = (len(s) - 1) * p
        lo, hi = math.floor(pos), math.ceil(pos)
        return round(s[lo] + (s[hi] - s[lo]) * (pos - lo), 4)

    return {"n": len(s), "min": s[0], "p10": q(0.1), "median": q(0.5), "p90": q(0.9),
            "max": s[-1], "mean": round(statistics.mean(s), 4)}


def distributions(before: Path, after: Path, nodes: int, seeds: int, first: int = 1,
                  duration: float | None = None) -> dict[str, Any]:
    raw: dict[str, list[dict[str, Any]]] = {}
    last = first + seeds - 1
    for label, tree in (("before", before), ("after", after)):
        print(f"distributions {label}: crash, {nodes} members, seeds {first}..{last} ...",
              file=sys.stderr, flush=True)
        env = {**os.environ, "PYTHONPATH": str(tree)}
        argv = [str(nodes), str(seeds), str(first), "-" if duration is None else str(duration)]
        proc = subprocess.run([sys.executable, "-c", _DIST_CHILD, *argv],
                              env=env, capture_output=True, text=True, check=True, cwd="/")
        raw[label] = json.loads(proc.stdout)
    out: dict[str, Any] = {"scenario": "crash", "nodes": nodes, "seeds": f"{first}..{last}",
                           "duration_s": duration, "metrics": {}}
    for k in DIST_METRICS:
        a = [r[k] for r in raw["before"] if r[k] is not None]
        b = [r[k] for r in raw["after"] if r[k] is not None]
        entry: dict[str, Any] = {
            "before": _quantiles(a) if a else {"n": 0},
            "after": _quantiles(b) if b else {"n": 0},
            "never_before": len(raw["before"]) - len(a),
            "never_after": len(raw["after"]) - len(b),
        }
        if a and b:
            entry["ks_d"], entry["ks_p"] = _ks(a, b)
        out["metrics"][k] = entry
    out["runs"] = raw
    return out


_SETUP_CHILD = r"""
import json, sys, time
from swimpy import sim
from swimpy.sim import simulation as S
n, k = int(sys.argv[1]), int(sys.argv[2])
def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
marks = {}
def partial(self, starting):
    # _start_converged of the old code, stopped after k engines
    recs = tuple(S.Member(self.names[i], self.addrs[i][0], self.addrs[i][1], b"", 1,
                          S.State.ALIVE, 0.0, self.config_for(i).vsn,
                          bytes(int(x) for x in self.addrs[i][0].split(".")))
                 for i in starting)
    marks["rss0"] = rss_mib()
    t0 = time.perf_counter()
    for i in starting[:k]:
        self._new_node(i, 0.0).bootstrap_members(recs)
    marks["seconds"] = time.perf_counter() - t0
    marks["rss1"] = rss_mib()
    raise KeyboardInterrupt
S.Simulation._start_converged = partial
try:
    S.Simulation(sim.load_scenario("crash").with_overrides(nodes=n), 1)
except KeyboardInterrupt:
    pass
per = (marks["rss1"] - marks["rss0"]) * 1024 / k
print(json.dumps({"nodes": n, "engines_built": k, "kib_per_engine": round(per, 1),
                  "set_up_seconds_per_engine": round(marks["seconds"] / k, 4),
                  "projected_set_up_gib": round(per * n / 1024 / 1024, 2)}))
"""


def setup_memory(tree: Path, nodes: int, engines: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "-c", _SETUP_CHILD, str(nodes), str(engines)],
                          env=env, capture_output=True, text=True, check=True, cwd="/")
    out: dict[str, Any] = json.loads(proc.stdout)
    out["tree"] = str(tree)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="the old checkout")
    ap.add_argument("--after", type=Path, default=ROOT,
                    help="the new checkout (default: this one)")
    ap.add_argument("--cases", default="crash-1000,crash-10000-300")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--distributions", action="store_true",
                    help="compare crash detection/convergence distributions instead")
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--duration", type=float, help="override the scenario's duration (s)")
    ap.add_argument("--setup-memory", type=int, metavar="N",
                    help="measure the old tree's set-up memory per engine at N members")
    ap.add_argument("--engines", type=int, default=300)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--label", help="store timing results under '<case> (<label>)' "
                    "instead of the case name (keeps earlier comparisons)")
    args = ap.parse_args()
    before = args.before.resolve()
    after = args.after.resolve()
    results: dict[str, Any] = {}
    if args.out.exists():
        results = json.loads(args.out.read_text())
    if args.setup_memory:
        key = f"setup-memory-before-{args.setup_memory}"
        results[key] = setup_memory(before, args.setup_memory, args.engines)
        results[key]["date"] = time.strftime("%Y-%m-%d")
    elif args.distributions:
        key = f"distributions-crash-{args.nodes}x{args.seeds}"
        if args.first_seed != 1:
            key += f"-from-{args.first_seed}"
        results[key] = distributions(before, after, args.nodes, args.seeds, args.first_seed,
                                     args.duration)
        results[key]["date"] = time.strftime("%Y-%m-%d")
    else:
        for case, v in timing(before, after, args.cases.split(","), args.pairs).items():
            v["date"] = time.strftime("%Y-%m-%d")
            v["cpus"] = os.cpu_count()
            key = case if after == ROOT else f"{case} ({after.name})"
            if args.label:
                key = f"{case} ({args.label})"
            results[key] = v
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
