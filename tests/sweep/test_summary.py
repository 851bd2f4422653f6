"""Per-point statistics, the table, the Pareto front and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swimpy.sweep.plot import PlotError, check_plot_path, pareto_front, plot
from swimpy.sweep.spec import parse_spec
from swimpy.sweep.summary import detection_metric, format_table, stats, summarize
from swimpy.sweep.tasks import expand


def test_stats_leave_out_nulls_and_count_them() -> None:
    s = stats([1.0, 2.0, 3.0, None, 4.0])
    assert s == {"median": 2.5, "p90": 3.7, "p99": 3.97, "mean": 2.5, "n": 4, "nulls": 1}
    assert stats([None]) == {"median": None, "p90": None, "p99": None, "mean": None,
                             "n": 0, "nulls": 1}


def fake_result(nodes: int, seed: int, sm: int) -> dict[str, Any]:
    return {
        "convergence_s": 5.0 + sm,
        "false_suspicions": seed,
        "false_deaths": 0,
        "partition_suspicions": 0,
        "partition_deaths": 0,
        "messages_per_node_per_s": 3.0,
        "bytes_per_node_per_s": 100.0 * seed,
        "detections": {
            "node-009": {"kind": "crash", "first_suspect_s": 1.0, "first_dead_s": sm + 1.0,
                         "all_dead_s": sm + 1.5 if seed == 1 else None},
            "node-008": {"kind": "crash", "applicable": False, "all_dead_s": None},
        },
    }


SPEC = 'scenario = "crash"\nseeds = 2\n[axes]\nnodes = [10, 20]\nsuspicion_mult = [2, 4]\n'


def summary() -> dict[str, Any]:
    spec = parse_spec(SPEC, source="s.toml")
    points, tasks = expand(spec)
    results = {t.key: fake_result(t.point["nodes"], t.seed, t.point["suspicion_mult"])
               for t in tasks if t.point_index != 3 or t.seed == 1}
    return summarize(spec, points, tasks, results)


def test_summary_per_point() -> None:
    s = summary()
    assert s["axes"] == {"nodes": [10, 20], "suspicion_mult": [2, 4]} and s["seeds"] == [1, 2]
    p = s["points"][1]
    assert p["point"] == {"nodes": 10, "suspicion_mult": 4} and p["runs"] == 2
    m = p["metrics"]
    assert m["all_dead_s"] == {"median": 5.5, "p90": 5.5, "p99": 5.5, "mean": 5.5,
                               "n": 1, "nulls": 1}  # the inapplicable detection is left out
    assert m["false_suspicions"]["median"] == 1.5 and m["convergence_s"]["n"] == 2
    assert "first_left_s" not in m
    assert s["points"][3]["runs"] == 1
    assert detection_metric(s) == "all_dead_s"


def test_the_table_has_a_line_per_point() -> None:
    text = format_table(summary())
    lines = text.splitlines()
    assert len(lines) == 2 + 4
    assert "all dead (s)" in lines[0] and "false deaths" in lines[0]
    assert lines[1].split()[:5] == ["nodes", "suspicion_mult", "runs", "median", "p90"]
    assert lines[3].split()[:6] == ["10", "4", "2", "5.50", "5.50", "5.50"]


def test_pareto_front() -> None:
    xy = [(1.0, 5.0), (2.0, 1.0), (3.0, 1.0), (1.5, 6.0), (0.5, 9.0), (2.0, 0.5)]
    assert pareto_front(xy) == [4, 0, 5]
    assert pareto_front([]) == []


def test_plot_paths_are_checked_up_front(tmp_path: Path) -> None:
    with pytest.raises(PlotError, match=r"expected a .png, .svg or .pdf file name"):
        check_plot_path(tmp_path / "x.jpg")
    with pytest.raises(PlotError, match=r"does not exist \(it is not created\)"):
        check_plot_path(tmp_path / "missing" / "x.png")


def test_the_plot_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = plot(summary(), tmp_path / "t.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
