"""Plots of membership convergence over time (needs the ``plot`` extra: matplotlib).

:func:`plot` takes the result of :func:`swimpy.sim.run` made with ``timeline=True`` (one
run, or ``{"runs": [...]}``) and writes a PNG or SVG, chosen by the file's extension.
:func:`check_plot_path` says beforehand whether it could (the command line calls it before
a run, so that a long run is not lost to a typo in the plot's name).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

__all__ = ["SUFFIXES", "PlotError", "check_plot_path", "plot"]

#: the file types :func:`plot` writes, by extension
SUFFIXES = (".png", ".svg")

_NEEDS_MATPLOTLIB = (
    "plotting needs matplotlib: pip install 'swimpy[plot]' (or pip install matplotlib)"
)


class PlotError(RuntimeError):
    """The plot cannot be made (matplotlib missing, no timeline, bad file type)."""


def _runs(result: dict[str, Any]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = result.get("runs", [result])
    for r in runs:
        if "timeline" not in r:
            raise PlotError(
                "the result has no timeline: run the simulation with timeline=True "
                "(the CLI does this when --plot is given)"
            )
    return runs


def _check_name(out: Path) -> None:
    if out.suffix.lower() not in SUFFIXES:
        raise PlotError(f"{out}: expected a .png or .svg file name")
    if not out.parent.is_dir():
        what = "is not a directory" if out.parent.exists() else "does not exist"
        raise PlotError(f"{out}: the directory {out.parent} {what} (it is not created)")


def check_plot_path(path: str | Path) -> Path:
    """Check, before a run, that :func:`plot` can write ``path``: a ``.png`` or ``.svg``
    name in a directory that exists, and matplotlib installed. Raises :class:`PlotError`
    (a message starting with the path); returns the path."""
    out = Path(path)
    _check_name(out)
    if importlib.util.find_spec("matplotlib") is None:
        raise PlotError(f"{out}: {_NEEDS_MATPLOTLIB}")
    return out


def plot(result: dict[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """Write the convergence plot of ``result`` to ``path`` (.png or .svg). The directory
    must exist: a missing one is an error, never created."""
    out = Path(path)
    _check_name(out)
    runs = _runs(result)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError(_NEEDS_MATPLOTLIB) from None

    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    single = len(runs) == 1
    for r in runs:
        tl = r["timeline"]
        label = None if not single else "members whose view is correct"
        alpha = 1.0 if single else max(0.15, 1.0 / len(runs) ** 0.5)
        ax1.step(tl["t"], tl["correct_fraction"], where="post", color="tab:blue",
                 alpha=alpha, label=label, linewidth=1.4 if single else 1.0)
        ax2.step(tl["t"], tl["mean_view"], where="post", color="tab:green", alpha=alpha,
                 label="mean members seen alive or suspect" if single else None)
        ax2.step(tl["t"], tl["running"], where="post", color="black", alpha=alpha,
                 linestyle="--", label="members running" if single else None)
    first = runs[0]
    labelled = False
    for t, what in first.get("disruptions", []):
        if t <= 0 and what.startswith("start"):
            continue
        for ax in (ax1, ax2):
            ax.axvline(t, color="tab:red", alpha=0.35, linewidth=0.8,
                       label=None if (ax is ax2 or labelled) else "disruption")
        labelled = True
    conv = first.get("convergence_s")
    if single and conv is not None:
        tc = first["last_disruption_s"] + conv
        ax1.axvline(tc, color="tab:purple", linestyle=":", linewidth=1.2,
                    label=f"converged (+{conv:.1f} s)")
    ax1.set_ylim(-0.03, 1.03)
    ax1.set_ylabel("fraction of members\nwith a correct view")
    ax2.set_ylabel("members")
    ax2.set_xlabel("simulated time (s)")
    name = first["scenario"]
    seeds = f"seed {first['seed']}" if single else f"{len(runs)} seeds"
    ax1.set_title(title or f"{name}: {first['nodes']} members, {first['profile']} profile, {seeds}")
    ax1.legend(loc="lower right", fontsize=8)
    ax2.legend(loc="lower right", fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    # Fixed metadata so that the same result gives the same file.
    meta: dict[str, Any] = {"Software": None} if out.suffix.lower() == ".png" else {"Date": None}
    fig.savefig(out, dpi=110, metadata=meta)
    plt.close(fig)
    return out
