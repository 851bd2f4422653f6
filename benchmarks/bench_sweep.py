"""Sweep throughput: a sweep of small runs on every core against one core.

    python benchmarks/bench_sweep.py                      # 5 repeats, jobs 1 and all cores
    python benchmarks/bench_sweep.py --repeats 3 --jobs 4

The sweep: the shipped ``crash`` scenario with 20 members for 30 simulated seconds,
suspicion_mult 2..5, 100 seeds per point: 400 runs of about 50 ms each, the kind of
sweep where the per-task overhead (pickling the task, starting workers, writing results)
matters most. Each repeat runs the whole sweep into a fresh results file, so every task
runs; the wall time includes starting and stopping the process pool. ``--jobs 1`` runs in
this process (what ``swimpy sweep --jobs 1`` does); the repeats of the two alternate so that
a disturbance from other work on the machine hits both. Before each run the script waits
(up to ``--max-wait`` seconds) until the machine is idle (at least 90 % idle CPU over two
seconds, from /proc/stat), and records how busy the whole machine was during the run
(``machine_busy``: about 1/cores for jobs=1 and 1.0 for jobs=cores when nothing else runs).

Results go to ``benchmarks/results/sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from swimpy.sweep.executors import (  # noqa: E402
    Executor,
    ProcessExecutor,
    SequentialExecutor,
    default_jobs,
)
from swimpy.sweep.runner import run_sweep  # noqa: E402
from swimpy.sweep.spec import parse_spec  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "sweep.json"

SPEC = """
name = "bench-small-runs"
scenario = "crash"
seeds = 100
[fixed]
nodes = 20
duration = "30s"
[axes]
suspicion_mult = [2, 3, 4, 5]
"""


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
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "usable_cpus": default_jobs(),
    }


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat (Linux)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return (0, 0)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields) - idle, sum(fields))


def busy_fraction(b0: tuple[int, int], b1: tuple[int, int]) -> float | None:
    total = b1[1] - b0[1]
    return None if total <= 0 else round((b1[0] - b0[0]) / total, 3)


def wait_idle(max_wait: float, idle: float = 0.9) -> dict[str, Any]:
    """Wait until the machine was at least ``idle`` idle over two seconds."""
    t0 = time.perf_counter()
    while True:
        a = cpu_jiffies()
        time.sleep(2.0)
        busy = busy_fraction(a, cpu_jiffies())
        waited = time.perf_counter() - t0
        if busy is None or busy <= 1 - idle or waited >= max_wait:
            return {"waited_s": round(waited, 1), "busy_before": busy}


def once(jobs: int, max_wait: float) -> dict[str, Any]:
    spec = parse_spec(SPEC, source="bench_sweep.py")
    ex: Executor = SequentialExecutor() if jobs == 1 else ProcessExecutor(jobs)
    idle = wait_idle(max_wait) if max_wait > 0 else {}
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        c0 = cpu_jiffies()
        t0 = time.perf_counter()
        done = run_sweep(spec, Path(tmp) / "r.jsonl", ex, progress=False)
        wall = time.perf_counter() - t0
        c1 = cpu_jiffies()
    assert done.ran == len(done.tasks)
    task_seconds = sum(r["wall_seconds"] for r in done.results.values())
    return {
        "jobs": jobs,
        "tasks": done.ran,
        "wall_s": round(wall, 3),
        "tasks_per_s": round(done.ran / wall, 3),
        "sum_of_task_wall_s": round(task_seconds, 3),
        # the share of the workers' time spent inside simulations (the rest: starting the
        # pool, pickling, writing results); other work on the machine slows tasks and wall
        # time alike, so this is about the sweep's own overhead
        "worker_efficiency": round(task_seconds / (jobs * wall), 3),
        "machine_busy": busy_fraction(c0, c1),
        **idle,
        "loadavg_1min_before": round(load0, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=default_jobs(), help="the parallel case")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--max-wait", type=float, default=300.0,
                    help="seconds to wait for an idle machine before each run (0: never)")
    args = ap.parse_args()
    runs: dict[int, list[dict[str, Any]]] = {1: [], args.jobs: []}
    once(args.jobs, 0)  # warm-up: imports, the fork server, file caches
    for k in range(args.repeats):
        for jobs in (1, args.jobs) if k % 2 == 0 else (args.jobs, 1):
            r = once(jobs, args.max_wait)
            runs[jobs].append(r)
            print(json.dumps(r), flush=True)
    walls = {j: [r["wall_s"] for r in rs] for j, rs in runs.items()}
    med = {j: statistics.median(w) for j, w in walls.items()}
    best = {j: min(w) for j, w in walls.items()}
    speedup_median = med[1] / med[args.jobs]
    eff = {j: statistics.median(r["worker_efficiency"] for r in rs) for j, rs in runs.items()}
    result = {
        "benchmark": "sweep throughput, jobs=1 vs jobs=N, small runs",
        "sweep": SPEC.strip(),
        "machine": machine(),
        "repeats": args.repeats,
        "runs": runs,
        "median_wall_s": med,
        "best_wall_s": best,
        "speedup_median": round(speedup_median, 3),
        "speedup_best": round(best[1] / best[args.jobs], 3),
        "speedup_per_core_median": round(speedup_median / args.jobs, 3),
        "worker_efficiency_median": eff,
        "goal": f">= 0.9 x {args.jobs} cores = {0.9 * args.jobs:.2f}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"speed-up (median of {args.repeats}): {speedup_median:.2f}x on {args.jobs} "
          f"processes ({speedup_median / args.jobs:.2f} per core); best {result['speedup_best']}x")


if __name__ == "__main__":
    main()
