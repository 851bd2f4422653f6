"""Per-point statistics of a sweep's results, as JSON and as a table.

For every point: the median, 90th and 99th percentile and the mean, over the point's runs,
of each run's convergence time, false and partition suspicions and deaths, and messages
and bytes per member per second; and the same over every detection of every run (a run
with three crashes gives three ``all_dead_s``), as :func:`swimpy.sim.summarize` pools them.
``n`` counts the values, ``nulls`` the runs or detections where it never happened (left out
of the statistics). Results are taken in task order, so the summary does not depend on the
order in which tasks finished.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from swimpy.sim.runner import DETECTION_METRICS, SUMMARY_METRICS, percentile
from swimpy.sweep.spec import SweepSpec
from swimpy.sweep.tasks import Point, Task, code_version

__all__ = [
    "DETECTION_METRICS",
    "RUN_METRICS",
    "detection_metric",
    "format_table",
    "stats",
    "summarize",
]

#: One value per run: what ``swimpy sim --runs`` summarises, but its wall time (a sweep's
#: results must not depend on the machine or the executor).
RUN_METRICS = tuple(m for m in SUMMARY_METRICS if m != "wall_seconds")


def stats(values: Sequence[float | int | None]) -> dict[str, Any]:
    """``{"median", "p90", "p99", "mean", "n", "nulls"}`` of ``values`` (None left out)."""
    xs = [float(v) for v in values if v is not None]
    out: dict[str, Any] = {"median": None, "p90": None, "p99": None, "mean": None}
    if xs:
        out = {
            "median": round(percentile(xs, 50), 6),
            "p90": round(percentile(xs, 90), 6),
            "p99": round(percentile(xs, 99), 6),
            "mean": round(statistics.fmean(xs), 6),
        }
    out["n"] = len(xs)
    out["nulls"] = len(values) - len(xs)
    return out


def point_metrics(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Statistics of every metric over ``results`` (one per seed); detection metrics only
    when some run has such a detection."""
    pools: dict[str, list[Any]] = {k: [r.get(k) for r in results] for k in RUN_METRICS}
    for k in DETECTION_METRICS:
        pools[k] = []
    for r in results:
        for d in r.get("detections", {}).values():
            if d.get("applicable") is False:
                continue  # nobody was left to detect it
            for k in DETECTION_METRICS:
                if k in d:
                    pools[k].append(d[k])
    return {k: stats(v) for k, v in pools.items() if v}


def summarize(
    spec: SweepSpec,
    points: Sequence[Point],
    tasks: Sequence[Task],
    results: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The sweep's summary: ``results`` maps task keys to sim results (missing tasks are
    left out; ``runs`` says how many seeds a point has)."""
    by_point: dict[int, list[Mapping[str, Any]]] = {p.index: [] for p in points}
    for t in sorted(tasks, key=lambda t: t.index):
        r = results.get(t.key)
        if r is not None:
            by_point[t.point_index].append(r)
    return {
        "sweep": spec.name,
        "spec": spec.source,
        "scenario": spec.scenario_name,
        "scenario_ref": spec.scenario_ref,
        "swimpy": code_version(),
        "seeds": list(spec.seeds),
        "axes": {a.name: list(a.values) for a in spec.axes},
        "fixed": {n: v for n, _, v in spec.fixed},
        "points": [
            {
                "index": p.index,
                "point": dict(p.values),
                "runs": len(by_point[p.index]),
                "metrics": point_metrics(by_point[p.index]),
            }
            for p in points
        ],
    }


def detection_metric(summary: Mapping[str, Any]) -> str | None:
    """The detection time shown in the table and the plots: until every member knows
    (``all_dead_s`` for crashes, else ``all_left_s`` for leaves), if any run has one."""
    for k in ("all_dead_s", "all_left_s"):
        if any(p["metrics"].get(k, {}).get("n") for p in summary["points"]):
            return k
    return None


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _value(v: Any) -> str:
    return _num(v) if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


_COLUMNS = (
    ("convergence_s", "convergence (s)"),
    ("false_suspicions", "false suspicions"),
    ("false_deaths", "false deaths"),
    ("messages_per_node_per_s", "msgs/member/s"),
    ("bytes_per_node_per_s", "bytes/member/s"),
)


def format_table(summary: Mapping[str, Any]) -> str:
    """One line per point: the axis values, the runs, and median / p90 / p99 of the
    detection time, convergence, false suspicions and deaths, and traffic."""
    axes = list(summary["axes"])
    det = detection_metric(summary)
    groups = ([(det, f"{det.removesuffix('_s').replace('_', ' ')} (s)")] if det else [])
    groups += list(_COLUMNS)
    head2 = [*axes, "runs"]
    for _ in groups:
        head2 += ["median", "p90", "p99"]
    rows = []
    for p in summary["points"]:
        row = [_value(p["point"][a]) for a in axes] + [str(p["runs"])]
        for key, _ in groups:
            s = p["metrics"].get(key, {})
            row += [_num(s.get("median")), _num(s.get("p90")), _num(s.get("p99"))]
        rows.append(row)
    ncols = len(head2)
    widths = [max(len(head2[i]), *(len(r[i]) for r in rows)) if rows else len(head2[i])
              for i in range(ncols)]
    # A group label spans its three columns: widen them if it is longer.
    first = len(axes) + 1
    for g, (_, label) in enumerate(groups):
        cols = range(first + 3 * g, first + 3 * g + 3)
        span = sum(widths[c] for c in cols) + 4
        if len(label) > span:
            widths[cols[-1]] += len(label) - span

    def line(cells: list[str], *, left: int) -> str:
        out = []
        for i, c in enumerate(cells):
            out.append(c.ljust(widths[i]) if i < left else c.rjust(widths[i]))
        return "  ".join(out).rstrip()

    top = []
    for i in range(first):
        top.append(" " * widths[i])
    for g, (_, label) in enumerate(groups):
        cols = range(first + 3 * g, first + 3 * g + 3)
        span = sum(widths[c] for c in cols) + 4
        top.append(label.center(span))
    lines = ["  ".join(top).rstrip(), line(head2, left=len(axes))]
    lines += [line(r, left=len(axes)) for r in rows]
    return "\n".join(lines)
