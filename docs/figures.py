"""Draw the figures of docs/concepts.md into docs/img/ (SVG, committed).

    pip install -e '.[plot]' && python docs/figures.py

The numbers come from swimpy itself (the profiles and the Lifeguard formulas of
``swimpy.core.lifeguard``), so a figure changes only when they do. The output is
deterministic for a given matplotlib: no dates, fixed SVG ids, fixed seeds.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # the checkout's swimpy, installed or not

from swimpy import profiles  # noqa: E402
from swimpy.core.lifeguard import (  # noqa: E402
    expected_confirmations,
    push_pull_scale,
    remaining_suspicion_time,
    retransmit_limit,
    suspicion_timeout,
)
from swimpy.profiles import Config  # noqa: E402

OUT = DOCS / "img"

# furo's palette-neutral colours that read on white (figures have a white background, so
# they stay legible in the dark theme too)
BLUE = "#2f6fb0"
ORANGE = "#d9822b"
GREEN = "#3a9a5b"
RED = "#c0392b"
GREY = "#6b6b6b"
LIGHT = "#eef2f7"
PROFILE_COLOURS = {"lan": BLUE, "wan": ORANGE, "local": GREEN}


def _style() -> None:
    plt.rcParams.update(
        {
            "svg.hashsalt": "swimpy-docs",  # stable element ids
            "font.size": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.facecolor": "white",
            "axes.facecolor": "white",
            "savefig.facecolor": "white",
        }
    )


#: "svg" for the docs; "png" to look at the figures in a viewer without SVG support.
FORMAT = "svg"


def _save(fig: Figure, name: str, out: Path) -> Path:
    path = (out / name).with_suffix("." + FORMAT)
    metadata = {"Date": None} if FORMAT == "svg" else {"Software": None}
    fig.savefig(path, format=FORMAT, bbox_inches="tight", metadata=metadata, dpi=110)
    plt.close(fig)
    return path


def _profiles() -> dict[str, Config]:
    return {
        "lan": profiles.lan(name="x"),
        "wan": profiles.wan(name="x"),
        "local": profiles.local(name="x"),
    }


# -- a probe, step by step ------------------------------------------------------------


def _arrow(ax: Axes, x0: float, t0: float, x1: float, t1: float, label: str = "",
           colour: str = BLUE, style: str = "-", lost: bool = False,
           label_side: str = "above") -> None:
    """A message from lane x0 at time t0 to lane x1 at time t1 (time runs down)."""
    end_x, end_t = (x0 + 0.55 * (x1 - x0), t0 + 0.55 * (t1 - t0)) if lost else (x1, t1)
    ax.add_patch(FancyArrowPatch((x0, t0), (end_x, end_t), arrowstyle="-|>",
                                 mutation_scale=10, color=colour, linestyle=style,
                                 linewidth=1.3, shrinkA=0, shrinkB=0))
    if lost:
        ax.plot([end_x], [end_t], marker="x", color=RED, markersize=9, markeredgewidth=2)
    if label:
        mx, mt = (x0 + end_x) / 2, (t0 + end_t) / 2
        dy = -0.025 if label_side == "above" else 0.045
        ax.text(mx, mt + dy, label, ha="center", va="center", fontsize=8.5, color=colour,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})


def probe_figure(out: Path) -> Path:
    cfg = profiles.lan(name="x")
    lanes = {"A (prober)": 0.0, "B (helper)": 1.0, "C (helper)": 2.0, "T (target)": 3.0}
    a, b, c, tt = lanes.values()
    # schematic heights (time runs down, not to scale); the times are the LAN profile's
    y_timeout, y_deadline, y_end = 1.0, 3.4, 4.3
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), sharey=True)
    titles = ("(a) the ping is lost, T is alive: a helper's ack saves it",
              "(b) T has crashed: no ack by the deadline, A suspects T")
    for ax, title, crashed in zip(axes, titles, (False, True), strict=True):
        ax.set_title(title, fontsize=10, loc="left", pad=22)
        for name, x in lanes.items():
            dead = crashed and name.startswith("T")
            ax.plot([x, x], [-0.1, y_end], color=RED if dead else GREY, linewidth=1,
                    linestyle=":" if dead else "-")
            ax.text(x, -0.2, name, ha="center", va="bottom", fontsize=9, weight="bold")
        for y in (y_timeout, y_deadline):
            ax.axhline(y, color=GREY, linewidth=0.8, linestyle="--")
        if crashed:
            _arrow(ax, a, 0.0, tt, 0.6, "ping: no answer")
            ax.text(tt + 0.06, 0.2, "crashed", color=RED, fontsize=9, ha="left")
        else:
            _arrow(ax, a, 0.0, tt, 0.6, "ping", lost=True)
        _arrow(ax, a, 1.05, c, 1.35, "ping-req", colour=ORANGE)
        _arrow(ax, a, 1.1, b, 1.55, "ping-req", colour=ORANGE, label_side="below")
        _arrow(ax, c, 1.35, tt, 1.65, "ping", colour=ORANGE)
        _arrow(ax, b, 1.55, tt, 2.05, "ping", colour=ORANGE, label_side="below")
        if not crashed:
            _arrow(ax, tt, 1.65, c, 1.95, "ack", colour=GREEN)
            _arrow(ax, c, 1.95, a, 2.5, "ack (relayed)", colour=GREEN, label_side="below")
            ax.text(a + 0.06, 2.9, "T is alive; A's health \N{MINUS SIGN}1", fontsize=8.5,
                    color=GREEN, va="center")
        else:
            _arrow(ax, b, 2.95, a, y_deadline, "nack", colour=GREY)
            _arrow(ax, c, 3.05, a, y_deadline, "nack", colour=GREY, label_side="below")
            ax.text(a + 0.06, 3.85,
                    "A suspects T and gossips it; every nack A did not get\n"
                    "counts against A's own health (maybe A is the slow one)",
                    fontsize=8.5, color=RED, va="center")
        ax.set_xlim(-0.3, 3.5)
        ax.set_ylim(y_end, -0.3)
        ax.set_xticks([])
        ax.spines["bottom"].set_visible(False)
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
    axes[0].set_yticks(
        [0.0, y_timeout, y_deadline],
        ["ping sent\n0 s", f"probe_timeout\n{cfg.probe_timeout:g} s",
         f"deadline\n{cfg.probe_interval:g} s \N{MULTIPLICATION SIGN} (health + 1)"],
        fontsize=8.5,
    )
    fig.text(0.01, 0.01, "LAN profile; time runs down, not to scale. B and C are "
             f"indirect_checks = {cfg.indirect_checks} random members (two drawn); "
             "the TCP ping A sends T at the same time is left out.",
             fontsize=8, color=GREY)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, "probe.svg", out)


# -- member states --------------------------------------------------------------------


def states_figure(out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4.6))
    pos = {"alive": (0.0, 1.0), "suspect": (3.4, 1.0), "dead": (6.8, 1.0),
           "left": (1.2, -0.9), "reaped": (6.8, -0.9)}
    colours = {"alive": GREEN, "suspect": ORANGE, "dead": RED, "left": GREY, "reaped": GREY}
    for name, (x, y) in pos.items():
        ax.add_patch(FancyBboxPatch((x - 0.65, y - 0.25), 1.3, 0.5,
                                    boxstyle="round,pad=0.05,rounding_size=0.2",
                                    fc="white", ec=colours[name], linewidth=2))
        ax.text(x, y, name.upper() if name != "reaped" else "(forgotten)", ha="center",
                va="center", fontsize=10, weight="bold", color=colours[name])

    def edge(a: str, b: str, label: str, at: tuple[float, float], rad: float = 0.0,
             colour: str = GREY, ha: str = "center", va: str = "center") -> None:
        ax.add_patch(FancyArrowPatch(pos[a], pos[b], arrowstyle="-|>",
                                     mutation_scale=13, color=colour, linewidth=1.4,
                                     connectionstyle=f"arc3,rad={rad}",
                                     shrinkA=34, shrinkB=34))
        ax.text(*at, label, ha=ha, va=va, fontsize=8.5, color=colour)

    edge("alive", "suspect", "a probe failed\n(or a peer suspects it)", (1.7, 1.88),
         rad=-0.35, colour=ORANGE, va="bottom")
    edge("suspect", "alive", "refuted: alive with a\nhigher incarnation", (1.7, 0.12),
         rad=-0.35, colour=GREEN, va="top")
    edge("suspect", "dead", "suspicion timed out\n(or a peer says dead)", (5.1, 1.1),
         colour=RED, va="bottom")
    edge("alive", "left", "graceful leave\n(a dead message\nfrom itself)", (0.45, -0.1),
         colour=GREY, ha="right")
    edge("dead", "alive", "rejoins with a higher incarnation (so can a LEFT member)",
         (3.4, 2.5), rad=0.42, colour=GREEN, va="bottom")
    edge("dead", "reaped", "after\nreconnect_timeout", (6.9, 0.05), colour=GREY, ha="left")
    edge("left", "reaped", "after tombstone_timeout", (4.0, -0.8), colour=GREY, va="bottom")
    ax.set_xlim(-0.9, 8.0)
    ax.set_ylim(-1.3, 2.9)
    ax.set_aspect("equal")
    ax.axis("off")
    return _save(fig, "states.svg", out)


# -- Lifeguard's dynamic suspicion ----------------------------------------------------


def suspicion_figure(out: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    cfg = profiles.lan(name="x")
    for n, colour in ((10, BLUE), (100, ORANGE), (1000, GREEN)):
        lo = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
        hi = lo * cfg.suspicion_max_timeout_mult
        k = expected_confirmations(cfg.suspicion_mult, n)
        xs = list(range(k + 1))
        ys = [remaining_suspicion_time(c, k, 0.0, lo, hi) for c in xs]
        left.plot(xs, ys, marker="o", color=colour, label=f"{n} members")
        for x, y in zip(xs, ys, strict=True):
            left.annotate(f"{y:.3g} s", (x, y), textcoords="offset points", xytext=(6, 4),
                          fontsize=8, color=colour)
    left.set_xticks([0, 1, 2])
    left.set_xlabel("independent confirmations from other members")
    left.set_ylabel("suspicion timeout (s)")
    times = f"{cfg.suspicion_max_timeout_mult}\N{MULTIPLICATION SIGN}"
    left.set_title(f"(a) LAN: a lone accusation waits {times} longer", fontsize=10,
                   loc="left")
    left.set_ylim(0, None)
    left.legend(frameon=False)

    sizes = [2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
    for name, c in _profiles().items():
        lo_s = [suspicion_timeout(c.suspicion_mult, n, c.probe_interval) for n in sizes]
        hi_s = [x * c.suspicion_max_timeout_mult for x in lo_s]
        colour = PROFILE_COLOURS[name]
        right.fill_between(sizes, lo_s, hi_s, color=colour, alpha=0.15, linewidth=0)
        right.plot(sizes, lo_s, color=colour, label=f"{name}: minimum … maximum")
        right.plot(sizes, hi_s, color=colour, linestyle="--")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("members")
    right.set_ylabel("suspicion timeout (s)")
    right.set_title("(b) it grows with log10(members), per profile", fontsize=10, loc="left")
    right.set_ylim(2, 4000)
    right.legend(frameon=False, loc="upper left")
    fig.tight_layout()
    return _save(fig, "suspicion.svg", out)


# -- dissemination --------------------------------------------------------------------


def _spread(n: int, cfg: Config, rng: random.Random) -> tuple[list[float], list[float]]:
    """Fraction of members that know one update over time, by dedicated gossip alone.

    A model, not the engine: every gossip_interval each member that knows the update and
    has transmissions left sends it to gossip_nodes random others; it sends it at most
    retransmit_limit times. (The engine also piggybacks it on every ping and ack.)
    """
    limit = retransmit_limit(cfg.retransmit_mult, n)
    left = {0: limit}
    known = {0}
    times, frac = [0.0], [1 / n]
    t = 0.0
    while left and len(known) < n and t < 60:
        t += cfg.gossip_interval
        new: set[int] = set()
        for member in list(left):
            for _ in range(cfg.gossip_nodes):
                if left[member] <= 0:
                    break
                left[member] -= 1
                target = rng.randrange(n)
                if target not in known:
                    new.add(target)
            if left[member] <= 0:
                del left[member]
        for member in new:
            known.add(member)
            left[member] = limit
        times.append(t)
        frac.append(len(known) / n)
    return times, frac


def dissemination_figure(out: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    cfg = profiles.lan(name="x")
    rng = random.Random(7)
    for n, colour in ((10, BLUE), (100, ORANGE), (1000, GREEN), (10000, RED)):
        ts, fs = _spread(n, cfg, rng)
        left.step(ts, [100 * f for f in fs], where="post", color=colour, label=f"{n} members")
    left.set_xlabel("seconds after the update (gossip every 0.2 s to 3 members)")
    left.set_ylabel("members that know it (%)")
    left.set_title("(a) LAN gossip spreads an update in O(log n) rounds", fontsize=10,
                   loc="left")
    left.legend(frameon=False, loc="lower right")
    left.set_xlim(0, None)

    sizes = [n for n in range(1, 10001)]
    sample = [1, 5, 9, 10, 20, 32, 33, 50, 64, 65, 99, 100, 128, 129, 256, 257, 512, 513,
              999, 1000, 1024, 1025, 2048, 2049, 4096, 4097, 8192, 8193, 9999, 10000]
    sample = [n for n in sample if n in set(sizes)]
    lim = [retransmit_limit(cfg.retransmit_mult, n) for n in sample]
    pp = [push_pull_scale(cfg.push_pull_interval, n) for n in sample]
    right.step(sample, lim, where="post", color=BLUE, label="retransmit limit (sends per update)")
    right.set_xscale("log")
    right.set_xlabel("members")
    right.set_ylabel("sends of each update", color=BLUE)
    twin = right.twinx()
    twin.step(sample, pp, where="post", color=ORANGE, label="push/pull period (s)")
    twin.set_ylabel("push/pull period (s)", color=ORANGE)
    twin.spines["top"].set_visible(False)
    right.set_title("(b) LAN: what grows with the cluster", fontsize=10, loc="left")
    lines = right.get_lines() + twin.get_lines()
    right.legend(lines, [str(x.get_label()) for x in lines], frameon=False, loc="upper left")
    fig.tight_layout()
    return _save(fig, "dissemination.svg", out)


FIGURES: dict[str, Callable[[Path], Path]] = {
    "probe": probe_figure,
    "states": states_figure,
    "suspicion": suspicion_figure,
    "dissemination": dissemination_figure,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the SVG files")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"figures to draw: {', '.join(FIGURES)} (default: all)")
    parser.add_argument("--format", choices=("svg", "png"), default="svg",
                        help="svg (committed) or png (to preview)")
    args = parser.parse_args(argv)
    global FORMAT
    FORMAT = args.format
    unknown = [n for n in args.names if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(unknown)}")
    args.out.mkdir(parents=True, exist_ok=True)
    _style()
    for name in args.names or list(FIGURES):
        print(FIGURES[name](args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
