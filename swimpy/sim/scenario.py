"""Scenario files: what a simulation runs, read from TOML and checked up front.

A scenario names a cluster (size, profile, configuration overrides), a network (latency,
loss, duplication, reordering, per-link rules), groups of members written as fractions of
the cluster (so ``--nodes`` rescales it), how the cluster starts (converged or by joining)
and a list of timed events (crash, restart, leave, join, partitions, flapping links,
starved members, churn). ``docs/simulator.md`` describes every key.

Every error is a :class:`ScenarioError` naming the file, the line (when it can be found)
and the key, and saying what is expected.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from swimpy.profiles import PROFILES, Config, ConfigError, from_mapping, parse_duration

__all__ = [
    "ACTIONS",
    "EventSpec",
    "GroupSpec",
    "LatencySpec",
    "LinkSpec",
    "Scenario",
    "ScenarioError",
    "StartSpec",
    "list_scenarios",
    "load_scenario",
    "parse_scenario",
]

#: Event actions a scenario may schedule.
ACTIONS = (
    "crash",
    "restart",
    "leave",
    "join",
    "partition",
    "heal",
    "flap",
    "starve",
    "unstarve",
    "churn",
)

#: Largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP); bigger datagrams cannot be sent.
UDP_MAX_PAYLOAD = 65507

KeyPath = tuple[str | int, ...]


class ScenarioError(ValueError):
    """A scenario file (or a scenario built in Python) is wrong.

    ``source`` is the file, ``key`` the dotted key (``events[2].at``), ``line`` the
    1-based line in the file when known.
    """

    def __init__(
        self, source: str, key: str, message: str, *, line: int | None = None
    ) -> None:
        self.source = source
        self.key = key
        self.line = line
        self.detail = message
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


def _members(n: int) -> str:
    return "1 member" if n == 1 else f"{n} members"


def _dotted(path: KeyPath) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out


# ------------------------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class LatencySpec:
    """A one-way delay distribution, in seconds.

    ``fixed`` (a), ``uniform`` (a=low, b=high), ``normal`` (a=mean, b=stddev, truncated at
    0), ``lognormal`` (a=median, b=sigma), ``exponential`` (a=minimum, b=mean of the part
    above the minimum).
    """

    dist: str = "fixed"
    a: float = 0.0005
    b: float = 0.0

    @property
    def mean(self) -> float:
        if self.dist == "fixed":
            return self.a
        if self.dist == "uniform":
            return (self.a + self.b) / 2
        if self.dist == "normal":
            return self.a
        if self.dist == "lognormal":
            return self.a * math.exp(self.b * self.b / 2)
        return self.a + self.b


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """Network behaviour on the links from ``src`` to ``dst`` (group names, "*" = all).

    ``None`` fields inherit from the default network (or an earlier matching rule).
    Rules are active from ``at`` until ``until`` (None = from the start / forever).
    """

    src: str = "*"
    dst: str = "*"
    symmetric: bool = True
    latency: LatencySpec | None = None
    loss: float | None = None
    duplicate: float | None = None
    reorder: float | None = None
    reorder_delay: float | None = None
    at: float | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """Members chosen by position in the cluster, independent of its size.

    Either a fraction range ``[start, end)`` of the member list (members
    ``round(start * n)`` to ``round(end * n) - 1``; a non-empty range always selects at
    least one member), or ``count`` consecutive members: the last ``count`` members when
    ``offset`` is None, else the ``count`` members starting at index
    ``round(offset * n)`` (``offset`` is the fraction of the cluster that comes before
    the group). A ``count`` group must fit in the cluster: :meth:`resolve` raises
    ``ValueError`` rather than shrink or shift it.
    """

    start: float = 0.0
    end: float = 1.0
    count: int | None = None
    offset: float | None = None

    def resolve(self, n: int) -> tuple[int, ...]:
        if n <= 0:
            return ()
        if self.count is not None:
            k = self.count
            if k > n:
                raise ValueError(f"count = {k}, but the cluster has only {_members(n)}")
            first = n - k if self.offset is None else round(self.offset * n)
            if first + k > n:
                raise ValueError(
                    f"count = {k} from offset = {self.offset:g} is members {first}..{first + k - 1}"
                    f", past the last member ({n - 1}) of {_members(n)}"
                )
            return tuple(range(first, first + k))
        lo = round(self.start * n)
        hi = round(self.end * n)
        if hi <= lo:
            lo = min(lo, n - 1)
            hi = lo + 1
        return tuple(range(lo, min(hi, n)))


@dataclass(frozen=True, slots=True)
class StartSpec:
    """How the cluster starts.

    ``converged``: every member (except the ``absent`` group) starts at time 0 with every
    other starting member already alive in its table. ``join``: members start at random
    times within ``join_window`` (the first at 0) and join ``seeds`` members
    (``join_to`` = "first": the first member, as a seed list would; "random": random
    members already running).
    """

    mode: str = "converged"
    absent: str | None = None
    join_window: float = 0.0
    seeds: int = 1
    join_to: str = "first"


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One timed event; which fields matter depends on ``action`` (see the guide)."""

    at: float
    action: str
    index: int
    group: str | None = None
    node: int | None = None
    count: int | None = None
    between: tuple[str, ...] = ()
    src: str | None = None
    dst: str | None = None
    until: float | None = None
    id: str | None = None
    delay: float = 0.0
    down: float = 0.0
    up: float = 0.0
    interval: float = 0.0
    crash_fraction: float = 0.0
    seeds: int = 1
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    source: str
    description: str = ""
    nodes: int = 5
    profile: str = "lan"
    duration: float = 60.0
    seed: int = 1
    fidelity: str = "fast"
    config: Mapping[str, Any] = field(default_factory=dict)
    start: StartSpec = field(default_factory=StartSpec)
    latency: LatencySpec = field(default_factory=LatencySpec)
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.005
    max_packet: int = UDP_MAX_PAYLOAD
    groups: Mapping[str, GroupSpec] = field(default_factory=dict)
    links: tuple[LinkSpec, ...] = ()
    events: tuple[EventSpec, ...] = ()
    sample_interval: float | None = None
    #: 1-based lines of keys in the file (``events[3].node``, ``groups.victim``), for the
    #: errors found after parsing (:meth:`check_members` after a ``nodes`` override)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def with_overrides(
        self,
        *,
        nodes: int | None = None,
        profile: str | None = None,
        duration: float | None = None,
        fidelity: str | None = None,
    ) -> Scenario:
        """A copy with the command-line overrides applied and checked."""
        s = self
        if nodes is not None:
            if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
                raise ScenarioError(self.source, "nodes", f"{nodes!r}: expected an int >= 1")
            s = replace(s, nodes=nodes)
            if nodes != self.nodes:
                s.check_members(f"resized from the file's nodes = {self.nodes}")
        if profile is not None:
            if profile not in PROFILES:
                raise ScenarioError(
                    self.source, "profile", f"{profile!r}: expected one of lan, wan, local"
                )
            s = replace(s, profile=profile)
            s.base_config()  # the [config] overrides must still be valid
        if duration is not None:
            if not duration > 0:
                raise ScenarioError(self.source, "duration", f"{duration!r}: expected > 0")
            s = replace(s, duration=float(duration))
        if fidelity is not None:
            if fidelity not in ("fast", "wire"):
                raise ScenarioError(
                    self.source, "fidelity", f"{fidelity!r}: expected 'fast' or 'wire'"
                )
            s = replace(s, fidelity=fidelity)
        return s

    def _error(self, key: str, message: str) -> ScenarioError:
        """An error about ``key``, on its line in the file when the parser recorded it
        (else the line of the nearest enclosing key: ``events[3]``, ``groups``)."""
        k = key
        line = self.lines.get(k)
        while line is None:
            parent = re.sub(r"(\.[^.\[\]]*|\[\d+\])$", "", k)
            if parent == k:
                break
            k = parent
            line = self.lines.get(k)
        return ScenarioError(self.source, key, message, line=line)

    def check_members(self, note: str = "") -> None:
        """Refuse what this cluster size cannot do, before anything runs: a ``count``
        group that does not fit in the cluster, an event's ``node`` outside it, an event's
        ``count`` larger than the members it picks from. Nothing is ever shrunk to fit.
        ``note`` says why the cluster has this size (added to the message)."""
        n = self.nodes
        why = f" ({note})" if note else ""
        sizes: dict[str, int] = {}
        for name, g in self.groups.items():
            try:
                sizes[name] = len(g.resolve(n))
            except ValueError as exc:
                raise self._error(f"groups.{name}", f"{exc}{why}") from None
        for ev in self.events:
            key = f"events[{ev.index}]"
            if ev.node is not None:
                if not -n <= ev.node < n:
                    raise self._error(
                        f"{key}.node",
                        f"{ev.node} is not a member index of a {n}-member cluster{why}: "
                        f"expected 0..{n - 1}, or {-n}..-1 counting from the end",
                    )
                size, what = 1, f"node = {ev.node}"
            elif ev.group is not None:
                size = n if ev.group in ("*", "all") else sizes[ev.group]
                what = f"group {ev.group!r}"
            else:
                continue
            if ev.count is not None and ev.count > size:
                raise self._error(
                    f"{key}.count",
                    f"count = {ev.count}, but {what} has only {_members(size)} "
                    f"in a {n}-member cluster{why}",
                )

    def cut_short(self) -> list[str]:
        """What the run's ``duration`` leaves out (after a ``duration`` override: the file
        itself is checked): events after the end, and ``until`` times past it."""
        out: list[str] = []
        end = self.duration
        for ev in self.events:
            if ev.at > end:
                out.append(f"events[{ev.index}] ({ev.action} at {ev.at:g} s) does not happen")
            elif ev.until is not None and ev.until > end:
                out.append(
                    f"events[{ev.index}] ({ev.action} until {ev.until:g} s) is cut off at the end"
                )
        for k, rule in enumerate(self.links):
            if rule.at is not None and rule.at > end:
                out.append(f"links[{k}] (at {rule.at:g} s) does not happen")
            elif rule.until is not None and rule.until > end:
                out.append(f"links[{k}] (until {rule.until:g} s) is cut off at the end")
        return out

    def base_config(self) -> Config:
        """The profile with the scenario's ``[config]`` overrides (no name or port yet)."""
        data = dict(self.config)
        data["profile"] = self.profile
        try:
            return from_mapping(data, source=self.source)
        except ConfigError as exc:
            raise ScenarioError(self.source, f"config.{exc.field}", exc.detail) from None

    def members_of(self, group: str) -> tuple[int, ...]:
        """Indices of the members of ``group`` ("*" or "all" = everyone) for this size."""
        if group in ("*", "all"):
            return tuple(range(self.nodes))
        return self.groups[group].resolve(self.nodes)


# ------------------------------------------------------------------------------- loading


def _package_dir() -> Any:
    return resources.files("swimpy").joinpath("scenarios")


def list_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package (``swimpy sim NAME``)."""
    return sorted(
        p.name[: -len(".toml")]
        for p in _package_dir().iterdir()
        if p.name.endswith(".toml") and not p.name.startswith(".")
    )


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Read a scenario from a file path, or by name from the shipped scenarios."""
    text_path = Path(name_or_path)
    if text_path.suffix == ".toml" or text_path.exists() or "/" in str(name_or_path):
        if not text_path.is_file():
            raise ScenarioError(
                str(name_or_path),
                "",
                "no such file; give a scenario file path or the name of a shipped scenario "
                f"({', '.join(list_scenarios())})",
            )
        return parse_scenario(text_path.read_text(encoding="utf-8"), source=str(text_path))
    name = str(name_or_path)
    res = _package_dir().joinpath(f"{name}.toml")
    if not res.is_file():
        raise ScenarioError(
            name,
            "",
            "not a file and not a shipped scenario; shipped scenarios: "
            + ", ".join(list_scenarios()),
        )
    return parse_scenario(res.read_text(encoding="utf-8"), source=f"swimpy/scenarios/{name}.toml")


# ------------------------------------------------------------------------------- parsing


_TOP_KEYS = {
    "name",
    "description",
    "nodes",
    "profile",
    "duration",
    "seed",
    "fidelity",
    "sample_interval",
    "config",
    "start",
    "network",
    "groups",
    "links",
    "events",
}
_NETWORK_KEYS = {"latency", "loss", "duplicate", "reorder", "reorder_delay", "max_packet"}
_START_KEYS = {"mode", "absent", "join_window", "seeds", "join_to"}
_LINK_KEYS = {
    "from",
    "to",
    "symmetric",
    "latency",
    "loss",
    "duplicate",
    "reorder",
    "reorder_delay",
    "at",
    "until",
}
_EVENT_KEYS: dict[str, set[str]] = {
    "crash": {"group", "node", "count"},
    "restart": {"group", "node", "count", "seeds"},
    "leave": {"group", "node", "count", "timeout"},
    "join": {"group", "node", "count", "seeds"},
    "partition": {"between", "from", "to", "until", "id"},
    "heal": {"id"},
    "flap": {"between", "from", "to", "until", "down", "up", "id"},
    "starve": {"group", "node", "count", "delay", "until"},
    "unstarve": {"group", "node", "count"},
    "churn": {"group", "until", "interval", "crash_fraction", "seeds", "timeout"},
}
_LATENCY_PARAMS = {
    "fixed": ("value",),
    "uniform": ("low", "high"),
    "normal": ("mean", "stddev"),
    "lognormal": ("median", "sigma"),
    "exponential": ("min", "mean"),
}


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.lines = text.splitlines()

    # --- errors -----------------------------------------------------------------------

    def error(self, path: KeyPath, message: str) -> ScenarioError:
        return ScenarioError(self.source, _dotted(path), message, line=self._line_of(path))

    def _line_of(self, path: KeyPath) -> int | None:
        """Best-effort line of ``path`` in the TOML text (None if not found)."""
        header_re = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-\"]+)\s*\]\]?")
        # Which section and which key inside it.
        if not path:
            return None
        first = path[0]
        assert isinstance(first, str)
        section_start = 0
        section_end = len(self.lines)
        rest: list[str | int] = list(path[1:])
        if first in ("config", "start", "network", "groups", "links", "events"):
            want_index = rest[0] if rest and isinstance(rest[0], int) else None
            if want_index is not None:
                rest = rest[1:]
            seen = -1
            found = None
            for i, line in enumerate(self.lines):
                m = header_re.match(line)
                if m and m.group(1).strip('"') == first:
                    seen += 1
                    if want_index is None or seen == want_index:
                        found = i
                        break
            if found is None:
                # maybe an inline table / array at top level: "network = {...}"
                return self._find_key(first, 0, self._first_header())
            section_start = found + 1
            section_end = len(self.lines)
            for j in range(section_start, len(self.lines)):
                if header_re.match(self.lines[j]):
                    section_end = j
                    break
            if not rest:
                return found + 1
        else:
            section_end = self._first_header()
            rest = [first]
        key = next((r for r in rest if isinstance(r, str)), None)
        if key is None:
            return section_start or None  # the section's header line (1-based)
        got = self._find_key(key, section_start, section_end)
        return got if got is not None else (section_start or None)

    def _first_header(self) -> int:
        for i, line in enumerate(self.lines):
            if re.match(r"^\s*\[", line):
                return i
        return len(self.lines)

    def _find_key(self, key: str, lo: int, hi: int) -> int | None:
        pat = re.compile(r"^\s*\"?" + re.escape(key) + r"\"?\s*=")
        inline = re.compile(r"[{,]\s*\"?" + re.escape(key) + r"\"?\s*=")
        for i in range(lo, hi):
            if pat.match(self.lines[i]):
                return i + 1
        for i in range(lo, hi):
            if inline.search(self.lines[i]):
                return i + 1
        return None

    # --- value helpers ----------------------------------------------------------------

    def table(self, value: Any, path: KeyPath) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"{value!r}: expected a table")
        return value

    def unknown(self, data: Mapping[str, Any], allowed: set[str], path: KeyPath) -> None:
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.error(
                    (*path, key),
                    f"unknown key{hint} (expected one of: {', '.join(sorted(allowed))})",
                )

    def duration(self, value: Any, path: KeyPath, *, zero_ok: bool = True) -> float:
        try:
            seconds = parse_duration(value, _dotted(path))
        except ConfigError:
            raise self.error(
                path,
                f"{value!r}: expected a duration such as \"200ms\", \"30s\", \"5m\" or a "
                "number of seconds",
            ) from None
        if seconds < 0 or (seconds == 0 and not zero_ok):
            raise self.error(path, f"{value!r}: expected a duration {'>=' if zero_ok else '>'} 0")
        return seconds

    def prob(self, value: Any, path: KeyPath) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise self.error(path, f"{value!r}: expected a probability between 0 and 1")
        return float(value)

    def fraction(self, value: Any, path: KeyPath) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise self.error(path, f"{value!r}: expected a fraction between 0 and 1")
        return float(value)

    def integer(self, value: Any, path: KeyPath, lo: int, hi: int | None = None) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < lo
            or (hi is not None and value > hi)
        ):
            rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
            raise self.error(path, f"{value!r}: expected an integer {rng}")
        return value

    def string(self, value: Any, path: KeyPath, choices: Sequence[str] | None = None) -> str:
        if not isinstance(value, str) or (choices is not None and value not in choices):
            exp = "a string" if choices is None else "one of " + ", ".join(map(repr, choices))
            raise self.error(path, f"{value!r}: expected {exp}")
        return value

    def boolean(self, value: Any, path: KeyPath) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"{value!r}: expected true or false")
        return value

    def latency(self, value: Any, path: KeyPath) -> LatencySpec:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return LatencySpec("fixed", self.duration(value, path), 0.0)
        t = self.table(value, path)
        dist = t.get("dist", "fixed")
        dist = self.string(dist, (*path, "dist"), tuple(_LATENCY_PARAMS))
        params = _LATENCY_PARAMS[dist]
        self.unknown(t, {"dist", *params}, path)
        vals: list[float] = []
        for p in params:
            if p not in t:
                raise self.error(
                    (*path, p),
                    f"missing: a {dist} latency needs {', '.join(params)}",
                )
            if p == "sigma":
                v = t[p]
                if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                    raise self.error((*path, p), f"{v!r}: expected a number >= 0")
                vals.append(float(v))
            else:
                vals.append(self.duration(t[p], (*path, p)))
        if dist == "uniform" and vals[1] < vals[0]:
            raise self.error((*path, "high"), f"{t['high']!r}: expected high >= low")
        if dist == "lognormal" and vals[0] <= 0:
            raise self.error((*path, "median"), "expected a median > 0")
        return LatencySpec(dist, vals[0], vals[1] if len(vals) > 1 else 0.0)

    def group_ref(self, value: Any, path: KeyPath, groups: Mapping[str, GroupSpec]) -> str:
        name = self.string(value, path)
        if name not in groups and name not in ("*", "all"):
            known = ", ".join(sorted(groups)) or "none defined"
            raise self.error(
                path,
                f"{name!r} is not a group: define it under [groups] (defined: {known}) "
                "or use \"all\"",
            )
        return name

    # --- sections ---------------------------------------------------------------------

    def group(self, value: Any, path: KeyPath) -> GroupSpec:
        expected = (
            "a fraction range [start, end] with 0 <= start < end <= 1, or a table "
            "{ count = k } / { count = k, offset = fraction }"
        )
        if isinstance(value, list):
            if len(value) != 2:
                raise self.error(path, f"{value!r}: expected {expected}")
            a = self.fraction(value[0], path)
            b = self.fraction(value[1], path)
            if not a < b:
                raise self.error(path, f"{value!r}: expected {expected}")
            return GroupSpec(a, b)
        if isinstance(value, dict):
            self.unknown(value, {"range", "count", "offset"}, path)
            if "range" in value:
                if "count" in value:
                    raise self.error(path, "give either range or count, not both")
                return self.group(value["range"], (*path, "range"))
            if "count" not in value:
                raise self.error(path, f"{value!r}: expected {expected}")
            count = self.integer(value["count"], (*path, "count"), 1)
            offset = None
            if "offset" in value:
                offset = self.fraction(value["offset"], (*path, "offset"))
            return GroupSpec(count=count, offset=offset)
        raise self.error(path, f"{value!r}: expected {expected}")

    def link(self, t: dict[str, Any], path: KeyPath, groups: Mapping[str, GroupSpec]) -> LinkSpec:
        self.unknown(t, _LINK_KEYS, path)
        src = self.group_ref(t.get("from", "*"), (*path, "from"), groups)
        dst = self.group_ref(t.get("to", "*"), (*path, "to"), groups)
        lat = self.latency(t["latency"], (*path, "latency")) if "latency" in t else None
        at = self.duration(t["at"], (*path, "at")) if "at" in t else None
        until = self.duration(t["until"], (*path, "until")) if "until" in t else None
        if at is not None and until is not None and until <= at:
            raise self.error((*path, "until"), "expected until > at")
        return LinkSpec(
            src=src,
            dst=dst,
            symmetric=self.boolean(t.get("symmetric", True), (*path, "symmetric")),
            latency=lat,
            loss=self.prob(t["loss"], (*path, "loss")) if "loss" in t else None,
            duplicate=self.prob(t["duplicate"], (*path, "duplicate")) if "duplicate" in t else None,
            reorder=self.prob(t["reorder"], (*path, "reorder")) if "reorder" in t else None,
            reorder_delay=(
                self.duration(t["reorder_delay"], (*path, "reorder_delay"))
                if "reorder_delay" in t
                else None
            ),
            at=at,
            until=until,
        )

    def event(
        self, t: dict[str, Any], i: int, path: KeyPath, groups: Mapping[str, GroupSpec]
    ) -> EventSpec:
        if "action" not in t:
            raise self.error(
                (*path, "action"), "missing: expected one of " + ", ".join(ACTIONS)
            )
        action = self.string(t["action"], (*path, "action"), ACTIONS)
        if "at" not in t:
            raise self.error((*path, "at"), "missing: when the event happens, e.g. at = \"30s\"")
        at = self.duration(t["at"], (*path, "at"))
        self.unknown(t, {"action", "at", *_EVENT_KEYS[action]}, path)
        kw: dict[str, Any] = {}
        if "group" in t:
            kw["group"] = self.group_ref(t["group"], (*path, "group"), groups)
        if "node" in t:
            v = t["node"]
            if isinstance(v, bool) or not isinstance(v, int):
                raise self.error(
                    (*path, "node"), f"{v!r}: expected a member index (negative counts from the end)"
                )
            kw["node"] = v
        if "group" in kw and "node" in kw:
            raise self.error((*path, "node"), "give either group or node, not both")
        if "count" in t:
            kw["count"] = self.integer(t["count"], (*path, "count"), 1)
            if "node" in kw and kw["count"] != 1:
                raise self.error(
                    (*path, "count"),
                    f"{kw['count']!r}: node = {kw['node']} is one member; use a group to pick "
                    "several at random",
                )
        if "seeds" in t:
            kw["seeds"] = self.integer(t["seeds"], (*path, "seeds"), 1)
        if "timeout" in t:
            kw["timeout"] = self.duration(t["timeout"], (*path, "timeout"), zero_ok=False)
        if "until" in t:
            until = self.duration(t["until"], (*path, "until"))
            if until <= at:
                raise self.error((*path, "until"), f"{t['until']!r}: expected a time after at")
            kw["until"] = until
        if "id" in t:
            kw["id"] = self.string(t["id"], (*path, "id"))
        if action in ("crash", "restart", "leave", "join", "starve", "unstarve") and (
            "group" not in kw and "node" not in kw
        ):
            raise self.error(
                path, f"a {action} event needs group = \"name\" or node = index"
            )
        if action in ("partition", "flap"):
            if "between" in t:
                if "from" in t or "to" in t:
                    raise self.error((*path, "between"), "give either between or from/to")
                b = t["between"]
                if not isinstance(b, list) or not 1 <= len(b) <= 2:
                    raise self.error(
                        (*path, "between"),
                        f"{b!r}: expected [\"groupA\", \"groupB\"] (or [\"group\"] for the "
                        "group against everyone else)",
                    )
                kw["between"] = tuple(
                    self.group_ref(g, (*path, "between", j), groups) for j, g in enumerate(b)
                )
            elif "from" in t and "to" in t:
                kw["src"] = self.group_ref(t["from"], (*path, "from"), groups)
                kw["dst"] = self.group_ref(t["to"], (*path, "to"), groups)
            else:
                raise self.error(
                    path,
                    f"a {action} needs between = [\"a\", \"b\"] (both directions) or "
                    "from = \"a\", to = \"b\" (one direction: packets from a to b are lost)",
                )
        if action == "starve":
            if "delay" not in t:
                raise self.error((*path, "delay"), "missing: how late the inbox is handled")
            kw["delay"] = self.duration(t["delay"], (*path, "delay"), zero_ok=False)
        if action == "flap":
            for k in ("down", "up"):
                if k not in t:
                    raise self.error((*path, k), f"missing: how long the link stays {k}")
                kw[k] = self.duration(t[k], (*path, k), zero_ok=False)
            if "until" not in kw:
                raise self.error((*path, "until"), "missing: when the flapping stops")
        if action == "churn":
            if "group" not in kw:
                raise self.error((*path, "group"), "missing: which members churn")
            if "until" not in kw:
                raise self.error((*path, "until"), "missing: when the churn stops")
            if "interval" not in t:
                raise self.error(
                    (*path, "interval"), "missing: mean time between churn operations"
                )
            kw["interval"] = self.duration(t["interval"], (*path, "interval"), zero_ok=False)
            if "crash_fraction" in t:
                kw["crash_fraction"] = self.prob(t["crash_fraction"], (*path, "crash_fraction"))
        return EventSpec(at=at, action=action, index=i, **kw)

    def parse(self) -> Scenario:
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise ScenarioError(
                self.source, "", f"not valid TOML: {exc}", line=int(m.group(1)) if m else None
            ) from None
        self.unknown(data, _TOP_KEYS, ())
        stem = Path(self.source).name
        stem = stem[: -len(".toml")] if stem.endswith(".toml") else stem
        kw: dict[str, Any] = {}
        kw["name"] = self.string(data.get("name", stem), ("name",))
        kw["description"] = self.string(data.get("description", ""), ("description",))
        kw["nodes"] = self.integer(data.get("nodes", 5), ("nodes",), 1)
        kw["profile"] = self.string(data.get("profile", "lan"), ("profile",), tuple(PROFILES))
        kw["duration"] = self.duration(data.get("duration", "60s"), ("duration",), zero_ok=False)
        kw["seed"] = self.integer(data.get("seed", 1), ("seed",), 0)
        kw["fidelity"] = self.string(data.get("fidelity", "fast"), ("fidelity",), ("fast", "wire"))
        if "sample_interval" in data:
            kw["sample_interval"] = self.duration(
                data["sample_interval"], ("sample_interval",), zero_ok=False
            )
        config = self.table(data.get("config", {}), ("config",))
        if "profile" in config or "name" in config:
            key = "profile" if "profile" in config else "name"
            raise self.error(
                ("config", key),
                "set the profile at the top level (profile = \"lan\"); node names are "
                "assigned by the simulator",
            )
        kw["config"] = dict(config)

        net = self.table(data.get("network", {}), ("network",))
        self.unknown(net, _NETWORK_KEYS, ("network",))
        if "latency" in net:
            kw["latency"] = self.latency(net["latency"], ("network", "latency"))
        for k in ("loss", "duplicate", "reorder"):
            if k in net:
                kw[k] = self.prob(net[k], ("network", k))
        if "reorder_delay" in net:
            kw["reorder_delay"] = self.duration(net["reorder_delay"], ("network", "reorder_delay"))
        if "max_packet" in net:
            kw["max_packet"] = self.integer(
                net["max_packet"], ("network", "max_packet"), 64, UDP_MAX_PAYLOAD
            )

        groups_t = self.table(data.get("groups", {}), ("groups",))
        groups: dict[str, GroupSpec] = {}
        for gname, gval in groups_t.items():
            if gname in ("*", "all"):
                raise self.error(("groups", gname), "this name is reserved for every member")
            groups[gname] = self.group(gval, ("groups", gname))
        kw["groups"] = groups

        start = self.table(data.get("start", {}), ("start",))
        self.unknown(start, _START_KEYS, ("start",))
        skw: dict[str, Any] = {}
        if "mode" in start:
            skw["mode"] = self.string(start["mode"], ("start", "mode"), ("converged", "join"))
        if "absent" in start:
            skw["absent"] = self.group_ref(start["absent"], ("start", "absent"), groups)
        if "join_window" in start:
            skw["join_window"] = self.duration(start["join_window"], ("start", "join_window"))
        if "seeds" in start:
            skw["seeds"] = self.integer(start["seeds"], ("start", "seeds"), 1)
        if "join_to" in start:
            skw["join_to"] = self.string(start["join_to"], ("start", "join_to"), ("first", "random"))
        kw["start"] = StartSpec(**skw)

        links = data.get("links", [])
        if not isinstance(links, list):
            raise self.error(("links",), "expected an array of tables: [[links]]")
        kw["links"] = tuple(
            self.link(self.table(t, ("links", i)), ("links", i), groups)
            for i, t in enumerate(links)
        )
        events = data.get("events", [])
        if not isinstance(events, list):
            raise self.error(("events",), "expected an array of tables: [[events]]")
        evs = [
            self.event(self.table(t, ("events", i)), i, ("events", i), groups)
            for i, t in enumerate(events)
        ]
        end = kw["duration"]
        for e in evs:
            for key, when in (("at", e.at), ("until", e.until)):
                if when is not None and when > end:
                    raise self.error(
                        ("events", e.index, key),
                        f"{when:g} s is after the end of the run (duration = {end:g} s)",
                    )
        for j, rule in enumerate(kw["links"]):
            for key, when in (("at", rule.at), ("until", rule.until)):
                if when is not None and when > end:
                    raise self.error(
                        ("links", j, key),
                        f"{when:g} s is after the end of the run (duration = {end:g} s)",
                    )
        kw["events"] = tuple(evs)
        kw["lines"] = self._key_lines(groups, evs)
        scen = Scenario(source=self.source, **kw)
        scen.base_config()  # validate the [config] overrides now (line added by the caller)
        scen.check_members()  # member indices and counts against the cluster size
        return scen

    def _key_lines(
        self, groups: Mapping[str, GroupSpec], events: Sequence[EventSpec]
    ) -> dict[str, int]:
        """Lines of the keys :meth:`Scenario.check_members` may complain about."""
        paths: list[KeyPath] = [("groups",), *(("groups", g) for g in groups)]
        for e in events:
            paths.append(("events", e.index))
            paths += [("events", e.index, k) for k in ("group", "node", "count")]
        out: dict[str, int] = {}
        for p in paths:
            line = self._line_of(p)
            if line is not None:
                out[_dotted(p)] = line
        return out


def parse_scenario(text: str, *, source: str = "<scenario>") -> Scenario:
    """Parse scenario TOML ``text``; ``source`` names it in error messages."""
    p = _Parser(text, source)
    try:
        return p.parse()
    except ScenarioError as exc:
        if exc.line is None and exc.key:
            path: list[str | int] = []
            for part in re.findall(r"[^.\[\]]+|\[\d+\]", exc.key):
                path.append(int(part[1:-1]) if part.startswith("[") else part)
            line = p._line_of(tuple(path))
            if line is not None:
                raise ScenarioError(exc.source, exc.key, exc.detail, line=line) from None
        raise
