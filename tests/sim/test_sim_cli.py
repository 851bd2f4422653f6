"""``swimpy sim``: the command line around the simulator (and the rest of the ``swimpy``
click group: ``keygen``, ``--version``, the agent's commands)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from swimpy import __version__
from swimpy.agent.cli import COMMANDS
from swimpy.cli import main


def swimpy(args: list[str]) -> int | str | None:
    """Run ``swimpy ARGS`` in this process, as the console script does (click's standalone
    mode: errors printed, never raised), and return its exit status."""
    with pytest.raises(SystemExit) as info:
        main.main(args, prog_name="swimpy")
    return info.value.code


def test_sim_lists_the_shipped_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert swimpy(["sim", "--list"]) == 0
    out = capsys.readouterr().out
    assert "crash" in out and "partition-half" in out and "wan-3dc" in out


def test_sim_runs_a_shipped_scenario_by_name_and_writes_json_to_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert swimpy(["sim", "crash", "--nodes", "8", "--seed", "3", "--duration", "30s",
                   "--json", "-"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["scenario"], r["nodes"], r["seed"], r["simulated_seconds"]) == ("crash", 8, 3, 30.0)
    assert r["detections"]["node-007"]["first_dead_s"] is not None


def test_sim_runs_several_seeds_and_summarises(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert swimpy(["sim", "crash", "--nodes", "6", "--runs", "3", "--seed", "5",
                   "--duration", "30", "--profile", "local", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert [x["seed"] for x in r["runs"]] == [5, 6, 7]
    assert {"median", "p99"} <= set(r["summary"]["convergence_s"])
    assert r["runs"][0]["profile"] == "local"
    text = capsys.readouterr().out
    assert "median" in text and "convergence_s" in text


def test_sim_prints_a_readable_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert swimpy(["sim", "crash", "--nodes", "5", "--duration", "30s", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "convergence:" in out and "crashed at 10 s" in out and "trace_sha256" in out


def test_sim_reports_a_bad_scenario_file_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('nodes = 5\n[network]\nloss = "lots"\n')
    assert swimpy(["sim", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: network.loss" in err and "expected a probability" in err


def test_sim_reports_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert swimpy(["sim", "nonesuch"]) == 2
    assert "shipped scenarios" in capsys.readouterr().err


def test_sim_writes_a_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "conv.png"
    assert swimpy(["sim", "crash", "--nodes", "5", "--duration", "30s", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sim_without_a_scenario_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["sim"])
    assert info.value.code == 2


def test_sim_without_a_scenario_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert swimpy(["sim"]) == 2
    err = capsys.readouterr().err
    assert "SCENARIO" in err and "--list" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (["--seed", "-1"], "--seed"),
        (["--runs", "0"], "--runs"),
        (["--nodes", "x"], "--nodes"),
        (["--duration", "soon"], "expected a number of seconds or a duration"),
        (["--duration", "0"], "'0' is not > 0"),
        (["--profile", "moon"], "--profile"),
        (["--fidelity", "exact"], "--fidelity"),
        (["--progress", "--no-progress"], "mutually exclusive"),
    ],
)
def test_sim_refuses_bad_options_before_running(
    args: list[str], wanted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert swimpy(["sim", "crash", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and wanted in err and "Traceback" not in err


def test_a_scenario_error_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert swimpy(["sim", "nonesuch"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("swimpy sim: error: nonesuch: ") and err.count("\n") == 1


def test_keygen_prints_a_base64_32_byte_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert swimpy(["keygen"]) == 0
    first = capsys.readouterr().out
    assert first.endswith("\n") and first.count("\n") == 1
    assert len(base64.b64decode(first.strip(), validate=True)) == 32
    assert swimpy(["keygen", "--json"]) == 0
    (key,) = json.loads(capsys.readouterr().out).values()
    assert len(base64.b64decode(key, validate=True)) == 32
    assert key != first.strip()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert swimpy(["--version"]) == 0
    assert capsys.readouterr().out == f"swimpy {__version__}\n"


def test_without_a_command_the_help_is_printed_and_the_status_is_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert swimpy([]) == 2
    out = capsys.readouterr().out
    assert "Usage: swimpy" in out and "sim" in out and "keygen" in out
    assert swimpy(["--help"]) == 0


def test_the_group_has_every_agent_command() -> None:
    assert {"sim", "keygen"} <= set(main.commands)
    for cmd in COMMANDS:
        assert cmd.name is not None and main.commands[cmd.name] is cmd


def test_help_does_not_import_the_simulator() -> None:
    probe = (
        "import sys\n"
        "from swimpy.cli import main\n"
        "try:\n"
        "    main(['--help'], prog_name='swimpy')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print(sorted(m for m in sys.modules if m.startswith('swimpy.sim')))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert res.stdout.splitlines()[-1] == "[]"
