"""Running scenarios: one seed or many, with a progress bar and a summary.

This is the only part of :mod:`swimpy.sim` that reads a clock, and only to report
``wall_seconds`` and to pace the progress bar; nothing it reads feeds the simulation.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from swimpy.sim.scenario import Scenario, load_scenario
from swimpy.sim.simulation import Simulation

__all__ = ["DETECTION_METRICS", "SUMMARY_METRICS", "Progress", "percentile", "run", "summarize"]

#: Top-level numbers summarised over runs.
SUMMARY_METRICS = (
    "convergence_s",
    "false_suspicions",
    "false_deaths",
    "partition_suspicions",
    "partition_deaths",
    "messages_per_node_per_s",
    "bytes_per_node_per_s",
    "wall_seconds",
)
#: Per-detection numbers, pooled over every crashed / leaving member of every run (except
#: those nobody was left to detect: ``"applicable": false``).
DETECTION_METRICS = ("first_suspect_s", "first_dead_s", "all_dead_s", "first_left_s", "all_left_s")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between ranks."""
    if not values:
        raise ValueError("no values")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{metric: {"median", "p99", "n", "nulls"}}`` over ``runs`` (nulls left out)."""
    pools: dict[str, list[float | None]] = {k: [] for k in SUMMARY_METRICS}
    for k in DETECTION_METRICS:
        pools[k] = []
    for r in runs:
        for k in SUMMARY_METRICS:
            pools[k].append(r.get(k))
        for d in r.get("detections", {}).values():
            if d.get("applicable") is False:
                continue  # nobody could detect it: neither a time nor a "never"
            for k in DETECTION_METRICS:
                if k in d:
                    pools[k].append(d[k])
    out: dict[str, dict[str, Any]] = {}
    for k, vals in pools.items():
        if not vals:
            continue
        xs = [float(v) for v in vals if v is not None]
        out[k] = {
            "median": round(percentile(xs, 50), 6) if xs else None,
            "p99": round(percentile(xs, 99), 6) if xs else None,
            "n": len(xs),
            "nulls": len(vals) - len(xs),
        }
    return out


class _Bar(tqdm):  # type: ignore[misc]
    """tqdm without its monitor thread: the simulator runs no threads (the layering test)."""

    monitor_interval = 0


class Progress:
    """A one-line progress bar on stderr (tqdm), redrawn at most five times a second:
    simulated seconds done over all runs, the run, elapsed time, ETA and the speed in
    simulated seconds per wall-clock second."""

    def __init__(self, label: str, runs: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.runs = runs
        self.stream = stream or sys.stderr
        self.run_index = 0
        self._bar: Any = None

    def start_run(self, index: int) -> None:
        self.run_index = index
        if self._bar is not None and self.runs > 1:
            self._bar.set_postfix_str(f"run {index + 1}/{self.runs}", refresh=False)

    def __call__(self, sim_t: float, end: float) -> None:
        if self._bar is None:
            self._bar = _Bar(
                total=end * self.runs,
                desc=self.label,
                file=self.stream,
                ascii=".#",
                mininterval=0.2,
                unit=" sim s",
                bar_format="{desc} [{bar:30}] {percentage:5.1f}%{postfix} sim {n:.0f}/"
                "{total:.0f} s [{elapsed}<{remaining}, {rate_fmt}]",
                postfix=f"run {self.run_index + 1}/{self.runs}" if self.runs > 1 else None,
            )
        done = self.run_index * end + min(sim_t, end)
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            self.stream.write("\n")
            self.stream.flush()


def _resolve(scenario: str | Path | Scenario) -> Scenario:
    if isinstance(scenario, Scenario):
        return scenario
    return load_scenario(scenario)


def run(
    scenario: str | Path | Scenario,
    *,
    seed: int | None = None,
    runs: int = 1,
    nodes: int | None = None,
    profile: str | None = None,
    duration: float | None = None,
    fidelity: str | None = None,
    progress: bool | None = None,
    timeline: bool = False,
) -> dict[str, Any]:
    """Run ``scenario`` (a :class:`Scenario`, a file path, or a shipped scenario's name).

    With ``runs`` = 1 the result of that run; otherwise ``{"runs": [...], "summary":
    {metric: {"median", "p99", ...}}}`` over seeds ``seed .. seed + runs - 1``. ``nodes``,
    ``profile``, ``duration`` and ``fidelity`` ("fast" or "wire") override the scenario.
    ``progress`` draws a bar on stderr (None: only on a terminal, for runs that take a
    while). ``timeline`` adds the sampled convergence timeline used by the plots.
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs={runs!r}: expected an int >= 1")
    sc = _resolve(scenario).with_overrides(
        nodes=nodes, profile=profile, duration=duration, fidelity=fidelity
    )
    first = sc.seed if seed is None else seed
    if progress is None:
        progress = sys.stderr.isatty() and sc.nodes * sc.duration * runs >= 20_000
    bar = Progress(sc.name, runs) if progress else None
    results: list[dict[str, Any]] = []
    try:
        for k in range(runs):
            if bar is not None:
                bar.start_run(k)
            t0 = time.perf_counter()
            sim = Simulation(sc, first + k, timeline=timeline)
            res = sim.run(bar)
            res["wall_seconds"] = round(time.perf_counter() - t0, 3)
            results.append(res)
    finally:
        if bar is not None:
            bar.close()
    if runs == 1:
        return results[0]
    return {"runs": results, "summary": summarize(results)}
