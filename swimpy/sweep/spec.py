"""Sweep files: which scenario, which seeds, which axes, read from TOML and checked up front.

A sweep file names a base scenario (a shipped name, a file, or an inline ``[scenario]``
table), the seeds every point runs with, the ``[axes]`` to vary and the ``[fixed]``
values set at every point::

    scenario = "crash"
    seeds = 4                      # seeds 1..4 (or a list: [1, 7, 9])
    [fixed]
    network.loss = 0.01
    [axes]
    nodes = [50, 100]
    suspicion_mult = { start = 2, stop = 6, step = 2 }   # 2, 4, 6

Every error is a :class:`SweepError` naming the file, the line when it can be found, and
the key. ``docs/sweeps.md`` describes every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from swimpy.profiles import Config, ConfigError, parse_duration
from swimpy.sim.scenario import list_scenarios

__all__ = [
    "CONFIG_FIELDS",
    "SCENARIO_KEYS",
    "Axis",
    "SweepError",
    "SweepSpec",
    "expand_range",
    "list_sweeps",
    "load_spec",
    "parse_path",
    "parse_spec",
]

#: Keys of a sweep file.
SPEC_KEYS = ("name", "description", "scenario", "seeds", "fixed", "axes")
#: Fields of :class:`swimpy.profiles.Config` usable by their bare name (``suspicion_mult``);
#: ``name`` is assigned by the simulator and ``profile`` is a scenario key.
CONFIG_FIELDS: tuple[str, ...] = tuple(
    sorted(f.name for f in dataclasses.fields(Config) if f.name not in ("name", "profile"))
)
#: Top-level scenario keys an axis may set by their bare name.
SCENARIO_SCALARS = ("nodes", "duration", "profile", "fidelity", "sample_interval")
#: Top-level keys of a scenario file (``docs/simulator.md``): the first part of a dotted path.
SCENARIO_KEYS = (
    *SCENARIO_SCALARS,
    "config",
    "start",
    "network",
    "groups",
    "links",
    "events",
)
#: Keys of a range table: ``{start, stop, step}`` or ``{start, stop, num[, scale]}``.
RANGE_KEYS = ("start", "stop", "step", "num", "scale")
#: An axis may not have more values than this (a range with a tiny step is a typo).
MAX_AXIS_VALUES = 10_000

#: A path part: ``name`` or ``name[3]`` (an element of an array such as ``events``).
_PART = re.compile(r"^([A-Za-z0-9_\-*]+)((?:\[\d+\])*)$")

PathT = tuple[str | int, ...]


class SweepError(ValueError):
    """A sweep file is wrong: ``source`` is the file, ``key`` the dotted key
    (``axes.suspicion_mult``), ``line`` the 1-based line when known."""

    def __init__(self, source: str, key: str, message: str, *, line: int | None = None) -> None:
        self.source = source
        self.key = key
        self.line = line
        self.detail = message
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.source, self.key, self.detail, self.line))


def _rebuild(source: str, key: str, message: str, line: int | None) -> SweepError:
    return SweepError(source, key, message, line=line)


@dataclass(frozen=True, slots=True)
class Axis:
    """One varied setting: ``name`` as written in the file (``network.loss``), ``path``
    where it goes in the scenario (``("network", "loss")``), and its ``values``."""

    name: str
    path: PathT
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A parsed sweep file.

    ``scenario_data`` is the base scenario as parsed TOML (before any override),
    ``scenario_ref`` what the file said (a name, a path, or ``"[scenario]"``), ``fixed``
    the ``(name, path, value)`` settings applied at every point, ``axes`` in file order
    (the first varies slowest).
    """

    name: str
    source: str
    description: str
    scenario_ref: str
    scenario_source: str
    scenario_data: Mapping[str, Any]
    seeds: tuple[int, ...]
    fixed: tuple[tuple[str, PathT, Any], ...]
    axes: tuple[Axis, ...]

    @property
    def scenario_name(self) -> str:
        """The base scenario's name (its ``name``, else its file name)."""
        return str(self.scenario_data.get("name", self.scenario_ref))

    @property
    def points(self) -> int:
        return math.prod(len(a.values) for a in self.axes)

    @property
    def tasks(self) -> int:
        return self.points * len(self.seeds)


# ------------------------------------------------------------------------------- keys


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _unknown_axis(name: str) -> str:
    return (
        f"unknown setting {name!r}: {_suggest(name, [*CONFIG_FIELDS, *SCENARIO_SCALARS])}"
        "expected a swimpy.profiles.Config field ("
        + ", ".join(CONFIG_FIELDS)
        + "), "
        + ", ".join(SCENARIO_SCALARS)
        + ", or a dotted scenario path such as network.loss, config.probe_timeout, "
        "groups.slow or events[1].delay"
    )


def parse_path(name: str) -> PathT:
    """Where setting ``name`` goes in a scenario: ``suspicion_mult`` -> ``("config",
    "suspicion_mult")``, ``nodes`` -> ``("nodes",)``, ``events[1].delay`` -> ``("events",
    1, "delay")``. Raises ``ValueError`` with a message listing what exists."""
    if name in ("seed", "seeds"):
        raise ValueError("the seeds are not an axis: set seeds = N or a list at the top level")
    if name in ("name", "description"):
        raise ValueError(f"{name!r} only labels a scenario: it cannot be varied")
    if name in CONFIG_FIELDS:
        return ("config", name)
    if name in SCENARIO_SCALARS:
        return (name,)
    if "." not in name and "[" not in name:
        raise ValueError(_unknown_axis(name))
    path: list[str | int] = []
    for part in name.split("."):
        m = _PART.match(part)
        if m is None:
            raise ValueError(
                f"{name!r}: {part!r} is not a key: expected names joined by dots, with [i] "
                "for an element of an array (events[1].delay)"
            )
        path.append(m.group(1))
        path.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    first = path[0]
    if first not in SCENARIO_KEYS:
        raise ValueError(
            f"{name!r}: {first!r} is not a scenario key: {_suggest(str(first), SCENARIO_KEYS)}"
            f"expected one of {', '.join(SCENARIO_KEYS)}"
        )
    if first == "config":
        if len(path) != 2 or not isinstance(path[1], str):
            raise ValueError(f"{name!r}: expected config.FIELD")
        if path[1] in ("name", "profile"):
            raise ValueError(
                f"{name!r}: set the profile with the top-level key profile; names are "
                "assigned by the simulator"
            )
        if path[1] not in CONFIG_FIELDS:
            raise ValueError(_unknown_axis(str(path[1])))
    elif first in SCENARIO_SCALARS and len(path) > 1:
        raise ValueError(f"{name!r}: {first} is a single value, not a table")
    elif first in ("links", "events") and (len(path) < 2 or not isinstance(path[1], int)):
        raise ValueError(f"{name!r}: {first} is an array: say which element, {first}[0]...")
    return tuple(path)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``network.loss = x`` is a nested table in TOML; ``"network.loss" = x`` a quoted key.
    Both give ``("network.loss", x)``. A table that is a range (``start`` and ``stop``) or
    the last part of a path whose value is itself a table is kept whole."""
    out: list[tuple[str, Any]] = []
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and not _is_range(value) and not _is_leaf_table(name):
            out.extend(_flatten(value, name))
        else:
            out.append((name, value))
    return out


def _is_range(value: Mapping[str, Any]) -> bool:
    return "start" in value and "stop" in value and set(value) <= set(RANGE_KEYS)


def _is_leaf_table(name: str) -> bool:
    """Paths whose values are tables in a scenario: a group (``{count = 1}``), a latency."""
    parts = name.split(".")
    return (len(parts) == 2 and parts[0] == "groups") or parts[-1] == "latency"


# ------------------------------------------------------------------------------- ranges


def _clean(x: float) -> float:
    """Drop binary noise: 0.1 * 3 = 0.30000000000000004 -> 0.3."""
    return float(f"{x:.10g}")


def expand_range(spec: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values of a range table (``docs/sweeps.md``, "Ranges").

    ``{start, stop, step}``: start, start + step, ... up to stop, stop included when a step
    lands on it. ``{start, stop, num}``: ``num`` evenly spaced values, both ends included;
    with ``scale = "log"`` geometrically spaced. Durations (``"200ms"``) are allowed for
    start, stop and step. When start, stop (and step) are integers the values are integers
    (rounded, repeats dropped, for ``num``). Raises ``ValueError``.
    """
    unknown = sorted(set(spec) - set(RANGE_KEYS))
    if unknown:
        raise ValueError(
            f"unknown range key {unknown[0]!r}: a range is {{start, stop, step}} or "
            "{start, stop, num} with scale = \"linear\" or \"log\""
        )
    if "start" not in spec or "stop" not in spec:
        raise ValueError("a range needs start and stop")
    has_step, has_num = "step" in spec, "num" in spec
    if has_step == has_num:
        raise ValueError("a range needs either step or num (not both)")
    scale = spec.get("scale", "linear")
    if scale not in ("linear", "log"):
        raise ValueError(f"scale = {scale!r}: expected \"linear\" or \"log\"")
    if scale == "log" and has_step:
        raise ValueError('scale = "log" goes with num (a number of values), not step')

    def number(key: str) -> float:
        v = spec[key]
        if isinstance(v, bool):
            raise ValueError(f"{key} = {v!r}: expected a number or a duration such as \"200ms\"")
        try:
            return parse_duration(v, key)
        except ConfigError:
            raise ValueError(
                f"{key} = {v!r}: expected a number or a duration such as \"200ms\""
            ) from None

    keys = ("start", "stop", "step") if has_step else ("start", "stop")
    integral = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in keys)
    start, stop = number("start"), number("stop")
    values: list[float] = []
    if has_step:
        step = number("step")
        if step == 0 or (stop - start) * step < 0:
            raise ValueError(
                f"step = {spec['step']!r} never gets from start = {spec['start']!r} to "
                f"stop = {spec['stop']!r}"
            )
        count = math.floor((stop - start) / step + 1e-9) + 1
        if count > MAX_AXIS_VALUES:
            raise ValueError(f"{count} values: at most {MAX_AXIS_VALUES} (is the step right?)")
        values = [start + i * step for i in range(count)]
    else:
        num = spec["num"]
        if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= MAX_AXIS_VALUES:
            raise ValueError(f"num = {num!r}: expected an integer in 1..{MAX_AXIS_VALUES}")
        if scale == "log":
            if start <= 0 or stop <= 0:
                raise ValueError('scale = "log" needs start and stop > 0')
            ratio = (stop / start) ** (1 / (num - 1)) if num > 1 else 1.0
            values = [start * ratio**i for i in range(num)]
        else:
            gap = (stop - start) / (num - 1) if num > 1 else 0.0
            values = [start + i * gap for i in range(num)]
        if num > 1:
            values[-1] = stop
    if integral:
        out: list[Any] = []
        for v in values:
            iv = round(v)
            if iv not in out:
                out.append(iv)
        return tuple(out)
    return tuple(_clean(v) for v in values)


# ------------------------------------------------------------------------------- loading


def _sweeps_dir() -> Any:
    return resources.files("swimpy").joinpath("sweeps")


def list_sweeps() -> list[str]:
    """Names of the sweeps shipped with the package (``swimpy sweep NAME``)."""
    return sorted(
        p.name[: -len(".toml")]
        for p in _sweeps_dir().iterdir()
        if p.name.endswith(".toml") and not p.name.startswith(".")
    )


def _scenarios_dir() -> Any:
    return resources.files("swimpy").joinpath("scenarios")


def _is_path(ref: str) -> bool:
    return ref.endswith(".toml") or "/" in ref or "\\" in ref


def load_spec(name_or_path: str | Path) -> SweepSpec:
    """Read a sweep from a file, or by name from the sweeps shipped in ``swimpy/sweeps``."""
    ref = str(name_or_path)
    path = Path(ref)
    if _is_path(ref) or path.exists():
        if not path.is_file():
            raise SweepError(
                ref, "", "no such file; give a sweep file or the name of a shipped sweep ("
                + ", ".join(list_sweeps()) + ")"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SweepError(ref, "", f"cannot read it: {exc}") from None
        return parse_spec(text, source=ref, base_dir=path.parent)
    res = _sweeps_dir().joinpath(f"{ref}.toml")
    if not res.is_file():
        raise SweepError(
            ref, "", "not a file and not a shipped sweep; shipped sweeps: "
            + ", ".join(list_sweeps())
        )
    return parse_spec(res.read_text(encoding="utf-8"), source=f"swimpy/sweeps/{ref}.toml")


class _Parser:
    def __init__(self, text: str, source: str, base_dir: Path | None) -> None:
        self.text = text
        self.lines = text.splitlines()
        self.source = source
        self.base_dir = base_dir

    def error(self, key: str, message: str) -> SweepError:
        return SweepError(self.source, key, message, line=self.line_of(key))

    def line_of(self, key: str) -> int | None:
        """Best effort: the line that sets ``key`` (``axes.network.loss``), else the line
        of its section's header."""
        if not key:
            return None
        parts = key.split(".")
        header_at = None
        if parts[0] in ("axes", "fixed", "scenario"):
            header = re.compile(r"^\s*\[\s*" + re.escape(parts[0]) + r"\s*\]")
            header_at = next((i for i, ln in enumerate(self.lines) if header.match(ln)), None)
        if header_at is None:
            # A top-level key (or an inline table: axes = { ... }): before the first header.
            lo, rest = 0, parts
            hi = next((j for j, ln in enumerate(self.lines) if re.match(r"^\s*\[", ln)),
                      len(self.lines))
        else:
            lo, rest = header_at + 1, parts[1:]
            hi = next((j for j in range(lo, len(self.lines))
                       if re.match(r"^\s*\[", self.lines[j])), len(self.lines))
            if not rest:
                return header_at + 1
        # The key as written: `network.loss`, `"network.loss"`, or `loss` under `network`.
        for cand in (".".join(rest), rest[-1], rest[0]):
            pat = re.compile(r'^\s*"?' + re.escape(cand).replace(r"\.", r'"?\s*\.\s*"?')
                             + r'"?\s*=')
            for i in range(lo, hi):
                if pat.match(self.lines[i]):
                    return i + 1
        return header_at + 1 if header_at is not None else None

    def parse(self) -> SweepSpec:
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise SweepError(
                self.source, "", f"not valid TOML: {exc}", line=int(m.group(1)) if m else None
            ) from None
        for key in data:
            if key not in SPEC_KEYS:
                raise self.error(
                    key, f"unknown key; {_suggest(key, SPEC_KEYS)}expected one of: "
                    + ", ".join(SPEC_KEYS)
                )
        stem = Path(self.source).name.removesuffix(".toml")
        name = data.get("name", stem)
        if not isinstance(name, str) or not name:
            raise self.error("name", f"{name!r}: expected a string")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.error("description", f"{description!r}: expected a string")
        ref, scen_source, scen_data = self.scenario(data)
        seeds = self.seeds(data.get("seeds", 1))
        fixed = self.fixed(data.get("fixed", {}))
        axes = self.axes(data.get("axes", {}))
        fixed_names = {p: n for n, p, _ in fixed}
        for a in axes:
            if a.path in fixed_names:
                raise self.error(
                    f"axes.{a.name}", f"also set in [fixed] as {fixed_names[a.path]}: keep one"
                )
        return SweepSpec(
            name=name,
            source=self.source,
            description=description,
            scenario_ref=ref,
            scenario_source=scen_source,
            scenario_data=scen_data,
            seeds=seeds,
            fixed=fixed,
            axes=axes,
        )

    def scenario(self, data: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        if "scenario" not in data:
            raise self.error(
                "scenario",
                "missing: the base scenario, a shipped name (" + ", ".join(list_scenarios())
                + "), a file path, or a [scenario] table",
            )
        ref = data["scenario"]
        if isinstance(ref, dict):
            return "[scenario]", f"{self.source} [scenario]", dict(ref)
        if not isinstance(ref, str) or not ref:
            raise self.error(
                "scenario", f"{ref!r}: expected a scenario name, a file path or a table"
            )
        if _is_path(ref) or (self.base_dir is not None and (self.base_dir / ref).is_file()):
            path = Path(ref)
            if not path.is_absolute() and self.base_dir is not None:
                path = self.base_dir / path
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = "no such file" if isinstance(exc, FileNotFoundError) else str(exc)
                raise self.error("scenario", f"{ref!r}: {reason} ({path})") from None
            source = str(path)
        else:
            res = _scenarios_dir().joinpath(f"{ref}.toml")
            if not res.is_file():
                raise self.error(
                    "scenario", f"{ref!r} is not a file and not a shipped scenario "
                    f"({', '.join(list_scenarios())})"
                )
            text = res.read_text(encoding="utf-8")
            source = f"swimpy/scenarios/{ref}.toml"
        try:
            scen = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise self.error("scenario", f"{source}: not valid TOML: {exc}") from None
        if "name" not in scen:
            # The name a file gets from its file name, kept when the text is rewritten.
            scen["name"] = Path(source).name.removesuffix(".toml")
        return ref, source, scen

    def seeds(self, value: Any) -> tuple[int, ...]:
        what = "an integer N >= 1 (seeds 1..N), a list of seeds, or a range {start, stop, step}"
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise self.error("seeds", f"{value!r}: expected {what}")
            return tuple(range(1, value + 1))
        if isinstance(value, dict):
            try:
                seeds = expand_range(value)
            except ValueError as exc:
                raise self.error("seeds", str(exc)) from None
        elif isinstance(value, list) and value:
            seeds = tuple(value)
        else:
            raise self.error("seeds", f"{value!r}: expected {what}")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise self.error("seeds", f"{s!r}: a seed is an integer >= 0")
        if len(set(seeds)) != len(seeds):
            raise self.error("seeds", f"{list(seeds)!r}: a seed is repeated")
        return tuple(seeds)

    def _path(self, section: str, name: str) -> PathT:
        try:
            return parse_path(name)
        except ValueError as exc:
            raise self.error(f"{section}.{name}", str(exc)) from None

    def fixed(self, value: Any) -> tuple[tuple[str, PathT, Any], ...]:
        if not isinstance(value, dict):
            raise self.error("fixed", "expected a table: [fixed] with one value per setting")
        out: list[tuple[str, PathT, Any]] = []
        seen: dict[PathT, str] = {}
        for name, v in _flatten(value):
            path = self._path("fixed", name)
            if path in seen:
                raise self.error(f"fixed.{name}", f"the same setting as {seen[path]}")
            seen[path] = name
            out.append((name, path, v))
        return tuple(out)

    def axes(self, value: Any) -> tuple[Axis, ...]:
        if not isinstance(value, dict):
            raise self.error("axes", "expected a table: [axes] with a list or range per setting")
        out: list[Axis] = []
        seen: dict[PathT, str] = {}
        for name, v in _flatten(value):
            key = f"axes.{name}"
            path = self._path("axes", name)
            if path in seen:
                raise self.error(key, f"the same setting as axes.{seen[path]}")
            seen[path] = name
            if isinstance(v, dict):
                try:
                    values = expand_range(v)
                except ValueError as exc:
                    raise self.error(key, str(exc)) from None
            elif isinstance(v, list):
                if not v:
                    raise self.error(key, "an empty list: an axis needs at least one value")
                values = tuple(v)
            else:
                raise self.error(
                    key,
                    f"{v!r}: expected a list of values or a range such as "
                    "{ start = 1, stop = 4, step = 1 } (a single value goes in [fixed])",
                )
            for i, x in enumerate(values):
                if x in values[:i]:
                    raise self.error(key, f"{x!r} is listed twice")
            out.append(Axis(name, path, values))
        return tuple(out)


def parse_spec(text: str, *, source: str = "<sweep>", base_dir: Path | None = None) -> SweepSpec:
    """Parse sweep TOML ``text``; ``source`` names it in errors; a relative scenario path
    is read from ``base_dir`` (the sweep file's directory)."""
    return _Parser(text, source, base_dir).parse()
