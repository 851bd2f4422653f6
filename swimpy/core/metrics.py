"""Render ``Engine.statistics()`` in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from swimpy.core.snapshot import GAUGES as _GAUGES
from swimpy.core.snapshot import Statistics

#: statistics that are levels rather than running totals
GAUGES = frozenset(_GAUGES)
_BAD = re.compile(r"[^a-zA-Z0-9_]")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus_text(
    stats: Statistics | Mapping[str, int | float],
    labels: Mapping[str, str] | None = None,
    prefix: str = "swimpy",
) -> str:
    """One ``# TYPE`` line and one sample per statistic; counters get a ``_total`` suffix.

    ``labels`` (e.g. ``{"node": "web-1", "pool": "lan"}``) are attached to every sample.
    """
    if isinstance(stats, Statistics):
        stats = stats.as_dict()
    lab = ""
    if labels:
        inner = ",".join(f'{_BAD.sub("_", k)}="{_escape(v)}"' for k, v in sorted(labels.items()))
        lab = "{" + inner + "}"
    lines: list[str] = []
    for key in sorted(stats):
        base = f"{prefix}_{_BAD.sub('_', key)}"
        if key in GAUGES:
            lines.append(f"# TYPE {base} gauge")
            lines.append(f"{base}{lab} {stats[key]}")
        else:
            lines.append(f"# TYPE {base}_total counter")
            lines.append(f"{base}_total{lab} {stats[key]}")
    return "\n".join(lines) + "\n"
