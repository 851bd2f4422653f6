"""The trade-off plots of a sweep (needs the ``plot`` extra: matplotlib).

Top row: every point's detection time (median time until every member knows) against its
false deaths (mean per run) and against its bandwidth (median bytes per member per
second), with the Pareto front marked: the points no other point beats on both. Below, one
row per axis: the three metrics against that axis's values, one line per combination of
the other axes (or their median when there are many). ``docs/sweeps.md`` explains how to
read them.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from swimpy.sweep.summary import detection_metric

__all__ = ["SUFFIXES", "PlotError", "check_plot_path", "pareto_front", "plot"]

#: File types written, by extension.
SUFFIXES = (".png", ".svg", ".pdf")
#: More combinations of the other axes than this: one median line instead of one each.
MAX_LINES = 8
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


class PlotError(RuntimeError):
    """The plot cannot be made (matplotlib missing, bad file name, nothing to plot)."""


def check_plot_path(path: str | Path) -> Path:
    """Check before a sweep that :func:`plot` can write ``path``: a .png, .svg or .pdf name
    in a directory that exists (it is never created), and matplotlib installed."""
    out = Path(path)
    if out.suffix.lower() not in SUFFIXES:
        raise PlotError(f"{out}: expected a .png, .svg or .pdf file name")
    if not out.parent.is_dir():
        what = "is not a directory" if out.parent.exists() else "does not exist"
        raise PlotError(f"{out}: the directory {out.parent} {what} (it is not created)")
    if importlib.util.find_spec("matplotlib") is None:
        raise PlotError(
            f"{out}: plotting needs matplotlib: pip install 'swimpy[plot]' "
            "(or pip install matplotlib)"
        )
    return out


def pareto_front(xy: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated when both coordinates are minimised (no other
    point is as good on both and better on one), ordered by x."""
    order = sorted(range(len(xy)), key=lambda i: (xy[i][0], xy[i][1]))
    front: list[int] = []
    best = math.inf
    for i in order:
        if xy[i][1] < best:
            front.append(i)
            best = xy[i][1]
    return front


def _metric(p: Mapping[str, Any], key: str, stat: str) -> float | None:
    v = p["metrics"].get(key, {}).get(stat)
    return None if v is None else float(v)


def _label(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def _values(point: Mapping[str, Any]) -> str:
    return " / ".join(str(v) for v in point.values())


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def plot(summary: Mapping[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """Write the trade-off plots of a sweep ``summary`` to ``path`` (.png, .svg, .pdf)."""
    out = check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in summary["points"] if p["runs"]]
    if not points:
        raise PlotError(f"{out}: no results to plot")
    det = detection_metric(summary)
    det_key = det or "convergence_s"
    det_label = {
        "all_dead_s": "detection: crash to all members know (s, median)",
        "all_left_s": "leave to all members know (s, median)",
        "convergence_s": "convergence (s, median; no crash in the scenario)",
    }[det_key]
    fd_label = "false deaths per run (mean)"
    bw_label = "bytes per member per second (median)"
    axes = list(summary["axes"])
    n_rows = 1 + len(axes)
    fig, grid = plt.subplots(n_rows, 3, figsize=(15, 4.3 * n_rows), squeeze=False)

    # --- top row: trade-offs ----------------------------------------------------------
    first = axes[0] if axes else None
    second = axes[1] if len(axes) > 1 else None
    firsts = list(summary["axes"][first]) if first else []
    seconds = list(summary["axes"][second]) if second else []
    cmap = plt.get_cmap("tab10" if len(firsts) <= 10 else "viridis")

    def style(p: Mapping[str, Any]) -> dict[str, Any]:
        color: Any = "tab:blue"
        if first:
            i = firsts.index(p["point"][first])
            color = cmap(i % 10) if len(firsts) <= 10 else cmap(i / max(len(firsts) - 1, 1))
        marker = _MARKERS[seconds.index(p["point"][second]) % len(_MARKERS)] if second else "o"
        return {"color": color, "marker": marker}

    placed = [p for p in points if _metric(p, det_key, "median") is not None]
    missing = len(points) - len(placed)
    for ax, (ykey, ystat, ylabel) in zip(
        grid[0][:2],
        [("false_deaths", "mean", fd_label), ("bytes_per_node_per_s", "median", bw_label)],
        strict=True,
    ):
        xy = [(_metric(p, det_key, "median") or 0.0, _metric(p, ykey, ystat) or 0.0)
              for p in placed]
        for p, (x, y) in zip(placed, xy, strict=True):
            ax.scatter([x], [y], s=36, alpha=0.85, edgecolors="none", **style(p))
        front = pareto_front(xy)
        if front:
            fx = [xy[i][0] for i in front]
            fy = [xy[i][1] for i in front]
            ax.step(fx, fy, where="post", color="tab:red", linewidth=1.2, alpha=0.7,
                    label="Pareto front")
            ax.scatter(fx, fy, s=140, facecolors="none", edgecolors="tab:red", linewidths=1.4)
            for j, i in enumerate(front):
                ax.annotate(_values(placed[i]["point"]), xy[i], xytext=(7, 3 if j % 2 else -9),
                            textcoords="offset points", fontsize=7, color="tab:red")
        ys = [y for _, y in xy]
        if ys and max(ys) > 0 and ykey == "false_deaths" and max(ys) > 10:
            ax.set_yscale("symlog", linthresh=1)
        elif ys and min(ys) > 0 and max(ys) / min(ys) > 10:
            ax.set_yscale("log")
        ax.set_xlabel(det_label)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    # Legend of the encodings in the third panel.
    key_ax = grid[0][2]
    key_ax.axis("off")
    handles = []
    if first:
        for i, v in enumerate(firsts):
            c = cmap(i % 10) if len(firsts) <= 10 else cmap(i / max(len(firsts) - 1, 1))
            handles.append(key_ax.scatter([], [], color=c, marker="o", label=f"{first}={v}"))
    if second:
        for i, v in enumerate(seconds):
            handles.append(key_ax.scatter([], [], color="gray", label=f"{second}={v}",
                                          marker=_MARKERS[i % len(_MARKERS)]))
    lines = [
        f"sweep {summary['sweep']}: scenario {summary['scenario']}",
        f"{len(summary['points'])} points x {len(summary['seeds'])} seeds",
    ]
    lines += [f"{k} = {v}" for k, v in summary.get("fixed", {}).items()]
    if missing:
        lines.append(f"{missing} point(s) never detected a crash: not in the scatter plots")
    lines.append("Pareto front (circled, red): no other point has both")
    lines.append("a lower detection time and a lower y; labelled")
    lines.append(" / ".join(axes) if axes else "")
    key_ax.text(0.0, 1.0, "\n".join(lines), va="top", fontsize=8, transform=key_ax.transAxes)
    if handles:
        key_ax.legend(handles=handles, loc="lower left", fontsize=8, frameon=False,
                      ncol=2 if len(handles) > 8 else 1)

    # --- one row per axis ---------------------------------------------------------------
    metrics = [(det_key, "median", det_label), ("false_deaths", "mean", fd_label),
               ("bytes_per_node_per_s", "median", bw_label)]
    for row, axis in enumerate(axes, start=1):
        values = list(summary["axes"][axis])
        numeric = _numeric(values)
        xpos = {repr(v): (float(v) if numeric else float(i)) for i, v in enumerate(values)}
        others = [a for a in axes if a != axis]
        combos: dict[str, list[Mapping[str, Any]]] = {}
        for p in points:
            key = _label({a: p["point"][a] for a in others})
            combos.setdefault(key, []).append(p)
        for col, (mkey, mstat, mlabel) in enumerate(metrics):
            ax = grid[row][col]
            if len(combos) <= MAX_LINES:
                for j, (key, ps) in enumerate(combos.items()):
                    pts = sorted(
                        ((xpos[repr(p["point"][axis])], _metric(p, mkey, mstat)) for p in ps),
                        key=lambda t: t[0],
                    )
                    xs = [x for x, y in pts if y is not None]
                    ys = [y for _, y in pts if y is not None]
                    ax.plot(xs, ys, marker=_MARKERS[j % len(_MARKERS)], linewidth=1.2,
                            label=key or None)
            else:
                xs, ys = [], []
                for v in values:
                    vals = [_metric(p, mkey, mstat) for p in points if p["point"][axis] == v]
                    got = sorted(y for y in vals if y is not None)
                    if got:
                        xs.append(xpos[repr(v)])
                        ys.append(got[len(got) // 2])
                ax.plot(xs, ys, marker="o", label=f"median over {len(combos)} combinations")
            if not numeric:
                ax.set_xticks([xpos[repr(v)] for v in values], [str(v) for v in values])
            ax.set_xlabel(axis)
            ax.set_ylabel(mlabel, fontsize=8)
            if mkey == "false_deaths":
                ys_all = [_metric(p, mkey, mstat) or 0.0 for p in points]
                if max(ys_all) > 10:
                    ax.set_yscale("symlog", linthresh=1)
            ax.grid(alpha=0.3)
            if col == 0 and (others or len(combos) > MAX_LINES):
                ax.legend(fontsize=7)
    fig.suptitle(title or f"{summary['sweep']}: detection time against false deaths and "
                 "bandwidth", fontsize=12)
    fig.tight_layout()
    meta: dict[str, Any] = {"Software": None} if out.suffix.lower() == ".png" else {}
    if out.suffix.lower() in (".svg", ".pdf"):
        meta = {"Date": None} if out.suffix.lower() == ".svg" else {"CreationDate": None}
    fig.savefig(out, dpi=100, metadata=meta)
    plt.close(fig)
    return out
