"""Parameter sweeps over the simulator: many scenarios x seeds, on every core or on Dask.

A sweep file names a base scenario, the axes to vary (profile fields, ``nodes``,
``duration``, dotted scenario paths) and the seeds; every (point, seed) is one task, run by
:func:`swimpy.sim.run`, and its result is appended to a JSONL file under a key that hashes
everything the result depends on, so sweeps resume and never reuse a stale result.

>>> from swimpy import sweep
>>> done = sweep.run("lan-suspicion", "results.jsonl", jobs=2)      # doctest: +SKIP
>>> print(sweep.format_table(done.summary))                         # doctest: +SKIP

The modules, one job each: :mod:`~swimpy.sweep.spec` (the sweep file),
:mod:`~swimpy.sweep.tasks` (points, tasks, keys, the task function),
:mod:`~swimpy.sweep.executors` (sequential, process pool, Dask),
:mod:`~swimpy.sweep.store` (the results file), :mod:`~swimpy.sweep.summary`,
:mod:`~swimpy.sweep.plot`, :mod:`~swimpy.sweep.runner` (putting them together) and
:mod:`~swimpy.sweep.cli` (``swimpy sweep``). ``docs/sweeps.md`` is the guide.

Names are imported on first use, so ``import swimpy.sweep.cli`` (done by the ``swimpy``
command line at start-up) loads neither the simulator nor tqdm.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swimpy.sweep.executors import (
        DaskExecutor,
        ExecutorError,
        ProcessExecutor,
        SequentialExecutor,
        TaskError,
        make_executor,
    )
    from swimpy.sweep.runner import SweepRun, run, run_sweep
    from swimpy.sweep.spec import SweepError, SweepSpec, list_sweeps, load_spec, parse_spec
    from swimpy.sweep.store import ResultStore, StoreError
    from swimpy.sweep.summary import format_table, summarize
    from swimpy.sweep.tasks import Point, Task, expand, run_task

_WHERE = {
    "DaskExecutor": "executors",
    "ExecutorError": "executors",
    "ProcessExecutor": "executors",
    "SequentialExecutor": "executors",
    "TaskError": "executors",
    "make_executor": "executors",
    "SweepRun": "runner",
    "run": "runner",
    "run_sweep": "runner",
    "SweepError": "spec",
    "SweepSpec": "spec",
    "list_sweeps": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
    "ResultStore": "store",
    "StoreError": "store",
    "format_table": "summary",
    "summarize": "summary",
    "Point": "tasks",
    "Task": "tasks",
    "expand": "tasks",
    "run_task": "tasks",
}

__all__ = [
    "DaskExecutor",
    "ExecutorError",
    "Point",
    "ProcessExecutor",
    "ResultStore",
    "SequentialExecutor",
    "StoreError",
    "SweepError",
    "SweepRun",
    "SweepSpec",
    "Task",
    "TaskError",
    "expand",
    "format_table",
    "list_sweeps",
    "load_spec",
    "make_executor",
    "parse_spec",
    "run",
    "run_sweep",
    "run_task",
    "summarize",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'swimpy.sweep' has no attribute {name!r}")
    return getattr(importlib.import_module(f"swimpy.sweep.{module}"), name)
