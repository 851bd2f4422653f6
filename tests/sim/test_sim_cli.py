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


# ------------------------------------------------------------------ checked before the run


def _no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any simulation run fail the test: what is checked must be checked before."""
    import swimpy.sim

    def ran(*args: object, **kwargs: object) -> None:
        raise AssertionError("the simulation ran before the options were checked")

    monkeypatch.setattr(swimpy.sim, "run", ran)


@pytest.mark.parametrize(
    ("option", "name", "wanted"),
    [
        ("--json", "missing/r.json", "the directory {tmp}/missing does not exist"),
        ("--plot", "missing/c.png", "the directory {tmp}/missing does not exist"),
        ("--plot", "c.jpg", "expected a .png or .svg file name"),
        ("--json", ".", "is a directory"),
        ("--json", "file/r.json", "the directory {tmp}/file is not a directory"),
    ],
)
def test_sim_checks_output_paths_before_running(
    tmp_path: Path, option: str, name: str, wanted: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "file").write_text("")
    _no_run(monkeypatch)
    path = str(tmp_path / name)
    assert swimpy(["sim", "crash", "--nodes", "5", option, path]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"swimpy sim: error: {option} {path}")
    assert wanted.format(tmp=tmp_path) in err
    assert not (tmp_path / "missing").exists(), "--plot/--json never create folders"


def test_sim_refuses_plot_without_matplotlib_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    _no_run(monkeypatch)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert swimpy(["sim", "crash", "--plot", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert "needs matplotlib" in err and "swimpy[plot]" in err and err.count("\n") == 1


def test_plot_does_not_create_missing_folders(tmp_path: Path) -> None:
    from swimpy.sim.plot import PlotError, plot

    target = tmp_path / "new" / "c.png"
    with pytest.raises(PlotError, match="does not exist"):
        plot({"timeline": {}}, target)
    assert not target.parent.exists()


def test_sim_refuses_an_index_beyond_a_smaller_cluster_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    f = tmp_path / "s.toml"
    f.write_text('nodes = 10\n\n[[events]]\nat = "5s"\naction = "crash"\nnode = 7\n')
    _no_run(monkeypatch)
    assert swimpy(["sim", str(f), "--nodes", "5"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert f"{f}:6: events[0].node: 7 is not a member index of a 5-member cluster" in err
    assert "resized from the file's nodes = 10" in err


def test_sim_says_which_members_a_random_count_picked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        'nodes = 12\nduration = "20s"\n[groups]\nhalf = [0.5, 1.0]\n'
        '[[events]]\nat = "5s"\naction = "crash"\ngroup = "half"\ncount = 2\n'
    )
    assert swimpy(["sim", str(f), "--seed", "4", "--json", "-"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["groups"] == {"half": ["node-006..node-011"]}
    (pick,) = r["events"]
    assert pick["group"] == "half" and pick["count"] == 2 and pick["eligible"] == 6
    assert len(pick["members"]) == 2 and set(pick["members"]) == set(r["detections"])
    assert swimpy(["sim", str(f), "--seed", "4"]) == 0
    text = capsys.readouterr().out
    assert "groups: half = node-006..node-011" in text
    assert f"5 s crash 2 at random of 6 eligible in group half: {', '.join(pick['members'])}" in text


def test_sim_notes_what_a_shorter_duration_leaves_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert swimpy(["sim", "partition-half", "--nodes", "6", "--duration", "30s"]) == 0
    err = capsys.readouterr().err
    assert "note: --duration 30s: events[0] (partition until 80 s) is cut off at the end" in err


def test_sim_reports_a_one_member_crash_as_not_applicable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert swimpy(["sim", "crash", "--nodes", "1", "--duration", "20s"]) == 0
    out = capsys.readouterr().out
    assert "node-000 crashed at 10 s: not applicable" in out and "all dead" not in out
