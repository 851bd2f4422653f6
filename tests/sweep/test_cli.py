"""``swimpy sweep``: the command, its outputs, and one-line errors before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swimpy.cli import main

SPEC = """
scenario = "crash"
seeds = 2
[fixed]
duration = "20s"
[axes]
nodes = [8, 12]
"""


def swimpy(args: list[str]) -> int | str | None:
    with pytest.raises(SystemExit) as info:
        main.main(args, prog_name="swimpy")
    return info.value.code


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    p = tmp_path / "small.toml"
    p.write_text(SPEC)
    return p


def test_sweep_is_in_the_group() -> None:
    assert "sweep" in main.commands


def test_a_sweep_prints_a_table_then_reruns_nothing(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.jsonl"
    assert swimpy(["sweep", str(spec), "--out", str(out), "--jobs", "1"]) == 0
    o, e = capsys.readouterr()
    assert "all dead (s)" in o and o.splitlines()[2].split()[:2] == ["8", "2"]
    assert "2 points x 2 seeds = 4 tasks; 0 already in" in e and "ran 4 tasks" in e
    assert len(out.read_text().splitlines()) == 4
    assert swimpy(["sweep", str(spec), "--out", str(out), "--json", "-"]) == 0
    o, e = capsys.readouterr()
    summary = json.loads(o)
    assert [p["point"] for p in summary["points"]] == [{"nodes": 8}, {"nodes": 12}]
    assert summary["run"] == {**summary["run"], "tasks": 4, "ran": 0, "reused": 4}
    assert {"median", "p90", "p99"} <= set(summary["points"][0]["metrics"]["all_dead_s"])
    assert "4 already in" in e and "nothing to run" in e


def test_dry_run_lists_the_points(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert swimpy(["sweep", str(spec), "--dry-run"]) == 0
    o = capsys.readouterr().out
    assert "2 points x 2 seeds = 4 tasks" in o and "nodes=12" in o


def test_list_shows_the_shipped_sweeps(capsys: pytest.CaptureFixture[str]) -> None:
    assert swimpy(["sweep", "--list"]) == 0
    assert "lan-loss-starved" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        ('scenario = "crash"\n[axes]\nsuspicion_mul = [2]\n',
         "{spec}:3: axes.suspicion_mul: unknown setting 'suspicion_mul': did you mean "
         "'suspicion_mult'?"),
        ('scenario = "crash"\nseeds = "four"\n', "{spec}:2: seeds: 'four': expected"),
        ('scenario = "crash"\n[axes]\nnetwork.loss = [0.5, 1.5]\n',
         "{spec}: axes.network.loss: the scenario (swimpy/scenarios/crash.toml) refuses it"),
    ],
)
def test_a_bad_sweep_file_is_one_line_naming_file_and_key(
    tmp_path: Path, body: str, wanted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(body)
    assert swimpy(["sweep", str(bad), "--out", str(tmp_path / "r.jsonl")]) == 2
    o, e = capsys.readouterr()
    assert o == "" and e.count("\n") == 1 and "Traceback" not in e
    assert e.startswith("swimpy sweep: error: " + wanted.format(spec=bad)), e
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        ([], "Missing option '--out PATH'"),
        (["--out", "{tmp}/no/r.jsonl"], "--out {tmp}/no/r.jsonl: the directory {tmp}/no does "
                                        "not exist (it is not created)"),
        (["--out", "{tmp}/r.jsonl", "--plot", "{tmp}/p.jpg"], "expected a .png, .svg or .pdf"),
        (["--out", "{tmp}/r.jsonl", "--plot", "{tmp}/no/p.png"], "does not exist"),
        (["--out", "{tmp}/r.jsonl", "--json", "{tmp}/no/s.json"], "--json {tmp}/no/s.json"),
        (["--out", "{tmp}/r.jsonl", "--jobs", "2", "--dask", "tcp://127.0.0.1:1"],
         "mutually exclusive"),
        (["--out", "{tmp}/r.jsonl", "--jobs", "0"], "--jobs"),
        (["--out", "{tmp}/r.jsonl", "--progress", "--no-progress"], "mutually exclusive"),
    ],
)
def test_bad_options_are_refused_before_running(
    spec: Path, tmp_path: Path, args: list[str], wanted: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [a.format(tmp=tmp_path) for a in args]
    assert swimpy(["sweep", str(spec), *argv]) == 2
    o, e = capsys.readouterr()
    assert o == "" and wanted.format(tmp=tmp_path) in e and "Traceback" not in e
    assert not (tmp_path / "r.jsonl").exists()


def test_plot_and_json_files(spec: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    out, png, js = tmp_path / "r.jsonl", tmp_path / "p.png", tmp_path / "s.json"
    assert swimpy(["sweep", str(spec), "--out", str(out), "--jobs", "1", "--plot", str(png),
                   "--json", str(js)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads(js.read_text())["points"]) == 2
    assert f"plot written to {png}" in capsys.readouterr().err
