"""``swimpy sim``: the command line around the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swimpy.cli import main


def test_sim_lists_the_shipped_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--list"]) == 0
    out = capsys.readouterr().out
    assert "crash" in out and "partition-half" in out and "wan-3dc" in out


def test_sim_runs_a_shipped_scenario_by_name_and_writes_json_to_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sim", "crash", "--nodes", "8", "--seed", "3", "--duration", "30s",
                 "--json", "-"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["scenario"], r["nodes"], r["seed"], r["simulated_seconds"]) == ("crash", 8, 3, 30.0)
    assert r["detections"]["node-007"]["first_dead_s"] is not None


def test_sim_runs_several_seeds_and_summarises(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["sim", "crash", "--nodes", "6", "--runs", "3", "--seed", "5",
                 "--duration", "30", "--profile", "local", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert [x["seed"] for x in r["runs"]] == [5, 6, 7]
    assert {"median", "p99"} <= set(r["summary"]["convergence_s"])
    assert r["runs"][0]["profile"] == "local"
    text = capsys.readouterr().out
    assert "median" in text and "convergence_s" in text


def test_sim_prints_a_readable_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "crash", "--nodes", "5", "--duration", "30s", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "convergence:" in out and "crashed at 10 s" in out and "trace_sha256" in out


def test_sim_reports_a_bad_scenario_file_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('nodes = 5\n[network]\nloss = "lots"\n')
    assert main(["sim", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: network.loss" in err and "expected a probability" in err


def test_sim_reports_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "nonesuch"]) == 2
    assert "shipped scenarios" in capsys.readouterr().err


def test_sim_writes_a_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "conv.png"
    assert main(["sim", "crash", "--nodes", "5", "--duration", "30s", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sim_without_a_scenario_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["sim"])
    assert info.value.code == 2
