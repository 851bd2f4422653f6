"""Running a sweep: plan the tasks, skip those already in the results file, run the rest
on an executor, append each result as it arrives, summarise.

>>> from swimpy import sweep
>>> done = sweep.run("my-sweep.toml", "results.jsonl", jobs=2)      # doctest: +SKIP
>>> done.summary["points"][0]["metrics"]["all_dead_s"]["median"]     # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from swimpy.sweep.executors import Executor, make_executor
from swimpy.sweep.spec import SweepSpec, load_spec
from swimpy.sweep.store import ResultStore
from swimpy.sweep.summary import summarize
from swimpy.sweep.tasks import Point, Task, expand

__all__ = ["SweepRun", "run", "run_sweep"]


class _Bar(tqdm):  # type: ignore[misc]
    """tqdm without its monitor thread (nothing here needs it; fewer threads to reason
    about next to a process pool)."""

    monitor_interval = 0


@dataclass(slots=True)
class SweepRun:
    """What a sweep did: its plan, every result (by task key), how many tasks ran now and
    how many were found in the results file, and the summary."""

    spec: SweepSpec
    points: list[Point]
    tasks: list[Task]
    results: dict[str, dict[str, Any]]
    ran: int = 0
    reused: int = 0
    #: records in the results file that belong to no task of this sweep
    foreign: int = 0
    wall_seconds: float = 0.0
    executor: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.results) == len(self.tasks)


def record(task: Task, result: dict[str, Any], scenario: str) -> dict[str, Any]:
    """The results-file line of ``task``."""
    return {
        "key": task.key,
        "point": dict(task.point),
        "seed": task.seed,
        "scenario": scenario,
        "swimpy": task.version,
        "result": result,
    }


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    executor: Executor | None = None,
    *,
    progress: bool | None = None,
    on_result: Callable[[Task, dict[str, Any]], None] | None = None,
) -> SweepRun:
    """Run ``spec``'s tasks that ``out`` does not hold yet on ``executor`` (default: a
    process per core), appending each result to ``out`` as it finishes. ``progress``: a
    bar on stderr (None: only on a terminal). Raises :class:`~swimpy.sweep.spec.SweepError`
    for a bad sweep before anything runs, :class:`~swimpy.sweep.executors.TaskError` if a
    task fails (the results so far are kept), KeyboardInterrupt as it comes."""
    points, tasks = expand(spec)
    keys = {t.key for t in tasks}
    state = SweepRun(spec, points, tasks, {})
    t0 = time.perf_counter()
    with ResultStore(out) as store:
        for t in tasks:
            rec = store.get(t.key)
            if rec is not None:
                state.results[t.key] = rec["result"]
        state.reused = len(state.results)
        state.foreign = sum(1 for k in store.records if k not in keys)
        todo = [t for t in tasks if t.key not in state.results]
        if todo:
            ex = executor if executor is not None else make_executor()
            with ex, _Bar(total=len(todo), unit="run", desc=spec.name, disable=_off(progress),
                          dynamic_ncols=True, smoothing=0.1) as bar:
                state.executor = ex.description
                for task, result in ex.run(todo):
                    store.append(record(task, result, spec.scenario_name))
                    state.results[task.key] = result
                    state.ran += 1
                    bar.update(1)
                    if on_result is not None:
                        on_result(task, result)
    state.wall_seconds = round(time.perf_counter() - t0, 3)
    state.summary = summarize(spec, points, tasks, state.results)
    return state


def _off(progress: bool | None) -> bool | None:
    # tqdm: disable=None means "only on a terminal".
    return None if progress is None else not progress


def run(
    spec: str | Path | SweepSpec,
    out: str | Path,
    *,
    jobs: int | None = None,
    dask: str | None = None,
    progress: bool | None = False,
) -> SweepRun:
    """Run a sweep file (or a shipped sweep's name, or a parsed spec) with results in
    ``out``: on ``jobs`` local processes (default: every core; 1: in this process) or on
    the Dask scheduler at ``dask`` ("local": a LocalCluster)."""
    s = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    return run_sweep(s, out, make_executor(jobs, dask), progress=progress)
