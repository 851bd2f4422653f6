"""From a sweep to tasks: the points (the product of the axes), one task per (point, seed),
each with the scenario text it runs and the key it is stored under.

A task's key is the SHA-256 of its point, its seed, the resolved scenario text (the base
scenario with the ``[fixed]`` settings and the point applied, written canonically) and
swimpy's version (:func:`code_version`: the release and a digest of the code that decides a
result). A results file therefore answers for a task only if nothing that could change its
result has changed; anything else makes it a new task.

:func:`run_task` is what an executor runs: the same :func:`swimpy.sim.run` that
``swimpy sim --json`` calls, on the task's scenario and seed. It is a plain module-level
function of a picklable :class:`Task`, so process pools and Dask workers can run it.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import swimpy
from swimpy.sweep.spec import PathT, SweepError, SweepSpec
from swimpy.sweep.toml import dumps

__all__ = ["Point", "Task", "code_version", "expand", "resolve_point", "run_task", "task_key"]

#: The parts of swimpy whose code decides a simulation's result (relative to the package).
ENGINE_PARTS = ("core", "sim", "wire", "profiles.py")


def _digest() -> str:
    root = Path(swimpy.__file__).parent
    h = hashlib.sha256()
    try:
        for part in ENGINE_PARTS:
            path = root / part
            for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
                h.update(f.relative_to(root).as_posix().encode() + b"\0")
                h.update(f.read_bytes() + b"\0")
    except OSError:
        return swimpy.__version__
    return f"{swimpy.__version__}+{h.hexdigest()[:12]}"


#: Computed once, when this module is imported (with the simulator: what a worker's fork
#: server preloads), so it describes the code this process runs, not later edits on disk.
_CODE_VERSION = _digest()


def code_version() -> str:
    """swimpy's version for task keys: the release (``0.1.0``) and a digest of the code that
    decides a simulation's result (``swimpy/core``, ``sim``, ``wire``, ``profiles.py``), as
    ``0.1.0+3f2a9c1d0b7e``. The release alone would not change while swimpy is developed;
    the digest does, so a sweep never reuses results of another engine. Just the release
    when the source cannot be read (a zipped install)."""
    return _CODE_VERSION


@dataclass(frozen=True, slots=True)
class Point:
    """One combination of axis values: ``values`` maps each axis name to its value."""

    index: int
    values: Mapping[str, Any]
    scenario_text: str

    def label(self) -> str:
        return ", ".join(f"{k}={_short(v)}" for k, v in self.values.items()) or "(base)"


@dataclass(frozen=True, slots=True)
class Task:
    """One simulation: a point and a seed. ``index`` orders tasks (points, then seeds)."""

    key: str
    index: int
    point_index: int
    point: Mapping[str, Any]
    seed: int
    scenario_text: str
    scenario_source: str
    version: str


def _short(v: Any) -> str:
    return json.dumps(v, separators=(",", ":")) if not isinstance(v, str) else v


def _set(data: dict[str, Any], path: PathT, value: Any) -> None:
    """Set ``path`` in the scenario ``data``, creating tables on the way (never arrays)."""
    node: Any = data
    for i, part in enumerate(path[:-1]):
        where = _where(path[: i + 1])
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ValueError(f"{where} is not an array")
            if part >= len(node):
                raise ValueError(
                    f"the scenario has no {where} ({_where(path[:i])} has {len(node)})")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise ValueError(f"{_where(path[:i])} is not a table")
            if part not in node:
                if isinstance(path[i + 1], int):
                    raise ValueError(f"the scenario has no {where}")
                node[part] = {}
            node = node[part]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list):
            raise ValueError(f"{_where(path[:-1])} is not an array")
        if last >= len(node):
            raise ValueError(
                f"the scenario has no {_where(path)} ({_where(path[:-1])} has {len(node)})")
        node[last] = copy.deepcopy(value)
    else:
        if not isinstance(node, dict):
            raise ValueError(f"{_where(path[:-1])} is not a table")
        node[last] = copy.deepcopy(value)


def _where(path: PathT) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + p
    return out


def resolve_point(spec: SweepSpec, values: Mapping[str, Any]) -> str:
    """The scenario text of the point ``values`` ({axis name: value}): the base scenario
    with the ``[fixed]`` settings, then the point's, applied. Raises :class:`SweepError`."""
    data = copy.deepcopy(dict(spec.scenario_data))
    axes = {a.name: a for a in spec.axes}
    settings = [(f"fixed.{n}", p, v) for n, p, v in spec.fixed]
    settings += [(f"axes.{n}", axes[n].path, v) for n, v in values.items()]
    for key, path, value in settings:
        try:
            _set(data, path, value)
        except ValueError as exc:
            raise SweepError(spec.source, key, str(exc)) from None
    try:
        return dumps(data)
    except TypeError as exc:
        raise SweepError(spec.source, "scenario", str(exc)) from None


def task_key(point: Mapping[str, Any], seed: int, scenario_text: str, version: str) -> str:
    """SHA-256 (hex) of the point, the seed, the resolved scenario text and the version."""
    blob = json.dumps(
        {"point": point, "seed": seed, "scenario": scenario_text, "swimpy": version},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _check(spec: SweepSpec, point: Point) -> None:
    """Parse the point's scenario as ``swimpy sim`` would: a bad value is refused before
    anything runs, naming the sweep setting that caused it."""
    from swimpy.sim.scenario import ScenarioError, parse_scenario

    try:
        parse_scenario(point.scenario_text, source=spec.scenario_source)
    except ScenarioError as exc:
        settings = [(f"axes.{a.name}", _where(a.path)) for a in spec.axes]
        settings += [(f"fixed.{n}", _where(p)) for n, p, _ in spec.fixed]
        culprit = next(
            (k for k, dotted in settings
             if exc.key == dotted or exc.key.startswith((dotted + ".", dotted + "["))),
            None,
        )
        if culprit is None:
            culprit = settings[0][0] if len(spec.axes) == 1 else "axes"
        at = f" at {point.label()}" if spec.axes else ""
        what = f"{exc.key}: {exc.detail}" if exc.key else exc.detail
        raise SweepError(
            spec.source, culprit, f"the scenario ({spec.scenario_source}) refuses it{at}: {what}"
        ) from None


def expand(spec: SweepSpec, *, check: bool = True) -> tuple[list[Point], list[Task]]:
    """The points (the product of the axes, the first varying slowest) and the tasks
    (each point with each seed). With ``check`` every point's scenario is parsed first."""
    names = [a.name for a in spec.axes]
    points: list[Point] = []
    for i, combo in enumerate(itertools.product(*(a.values for a in spec.axes))):
        values = dict(zip(names, combo, strict=True))
        p = Point(i, values, resolve_point(spec, values))
        if check:
            _check(spec, p)
        points.append(p)
    tasks: list[Task] = []
    version = code_version()
    for p in points:
        for seed in spec.seeds:
            tasks.append(
                Task(
                    key=task_key(p.values, seed, p.scenario_text, version),
                    index=len(tasks),
                    point_index=p.index,
                    point=p.values,
                    seed=seed,
                    scenario_text=p.scenario_text,
                    scenario_source=spec.scenario_source,
                    version=version,
                )
            )
    return points, tasks


def run_task(task: Task) -> dict[str, Any]:
    """Run one task: the result of ``swimpy sim --json`` for its scenario and seed."""
    from swimpy.sim import parse_scenario, run

    here = code_version()
    if task.version != here:
        raise RuntimeError(
            f"this worker runs swimpy {here}, the sweep was planned with swimpy {task.version}"
            ": install the same version everywhere (in a checkout: do not edit swimpy/core, "
            "sim, wire or profiles.py while a sweep runs)"
        )
    scenario = parse_scenario(task.scenario_text, source=task.scenario_source)
    return run(scenario, seed=task.seed, progress=False)
