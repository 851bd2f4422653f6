"""Sweep files: keys, ranges, seeds, settings by name or dotted path, and one-line errors
that name the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from swimpy.sweep.spec import (
    CONFIG_FIELDS,
    SweepError,
    expand_range,
    list_sweeps,
    load_spec,
    parse_path,
    parse_spec,
)


def spec(text: str, **kw: object) -> object:
    return parse_spec(text, source="s.toml", **kw)  # type: ignore[arg-type]


def error(text: str) -> SweepError:
    with pytest.raises(SweepError) as info:
        parse_spec(text, source="s.toml")
    assert "\n" not in str(info.value)
    return info.value


def test_the_issue_example_parses() -> None:
    s = parse_spec(
        'scenario = "crash"\nseeds = 4\n[axes]\nnodes = [50, 100]\nsuspicion_mult = [2, 4]\n',
        source="s.toml",
    )
    assert s.seeds == (1, 2, 3, 4)
    assert [(a.name, a.path, a.values) for a in s.axes] == [
        ("nodes", ("nodes",), (50, 100)),
        ("suspicion_mult", ("config", "suspicion_mult"), (2, 4)),
    ]
    assert (s.points, s.tasks) == (4, 16)
    assert s.scenario_data["name"] == "crash" and s.scenario_source.endswith("crash.toml")


def test_dotted_paths_nested_quoted_and_indexed() -> None:
    s = parse_spec(
        'scenario = "starved-lifeguard"\n'
        "[fixed]\nnetwork.loss = 0.01\ngroups.slow = { count = 3 }\n"
        '[axes]\n"config.probe_timeout" = ["200ms", "400ms"]\n'
        '"events[0].delay" = ["1s", "2s"]\nnetwork.latency = ["1ms", "5ms"]\n',
        source="s.toml",
    )
    assert [a.path for a in s.axes] == [
        ("config", "probe_timeout"), ("events", 0, "delay"), ("network", "latency")]
    assert s.fixed == (("network.loss", ("network", "loss"), 0.01),
                       ("groups.slow", ("groups", "slow"), {"count": 3}))


@pytest.mark.parametrize(
    ("table", "values"),
    [
        ({"start": 1, "stop": 4, "step": 1}, (1, 2, 3, 4)),
        ({"start": 2, "stop": 7, "step": 2}, (2, 4, 6)),
        ({"start": 0.1, "stop": 0.3, "step": 0.1}, (0.1, 0.2, 0.3)),
        ({"start": 1.0, "stop": 0.5, "step": -0.25}, (1.0, 0.75, 0.5)),
        ({"start": 0, "stop": 1, "num": 5}, (0, 1)),  # integers: rounded, repeats dropped
        ({"start": 0.0, "stop": 1.0, "num": 5}, (0.0, 0.25, 0.5, 0.75, 1.0)),
        ({"start": 0.001, "stop": 0.1, "num": 3, "scale": "log"}, (0.001, 0.01, 0.1)),
        ({"start": 10, "stop": 1000, "num": 3, "scale": "log"}, (10, 100, 1000)),
        ({"start": "200ms", "stop": "1s", "step": "400ms"}, (0.2, 0.6, 1.0)),
        ({"start": 3, "stop": 3, "num": 1}, (3,)),
    ],
)
def test_ranges(table: dict[str, object], values: tuple[object, ...]) -> None:
    assert expand_range(table) == values


@pytest.mark.parametrize(
    ("table", "wanted"),
    [
        ({"start": 1, "stop": 4}, "either step or num"),
        ({"start": 1, "stop": 4, "step": 1, "num": 2}, "either step or num"),
        ({"start": 1, "stop": 4, "step": 0}, "never gets from"),
        ({"start": 4, "stop": 1, "step": 1}, "never gets from"),
        ({"start": 0, "stop": 1, "num": 3, "scale": "log"}, "start and stop > 0"),
        ({"start": 1, "stop": 2, "step": 1, "scale": "log"}, "goes with num"),
        ({"start": 1, "stop": 2, "num": 0}, "num = 0"),
        ({"start": 0, "stop": 1, "step": 1e-9}, "at most"),
        ({"start": "soon", "stop": 2, "step": 1}, "start = 'soon'"),
    ],
)
def test_bad_ranges(table: dict[str, object], wanted: str) -> None:
    with pytest.raises(ValueError, match=wanted):
        expand_range(table)


def test_seeds_forms() -> None:
    base = 'scenario = "crash"\n'
    assert parse_spec(base + "seeds = 2", source="s").seeds == (1, 2)
    assert parse_spec(base + "seeds = [7, 3]", source="s").seeds == (7, 3)
    assert parse_spec(base + "seeds = {start = 10, stop = 12, step = 1}", source="s").seeds == (
        10, 11, 12)
    assert parse_spec(base, source="s").seeds == (1,)


def test_an_unknown_axis_says_which_fields_exist() -> None:
    e = error('scenario = "crash"\n[axes]\nsuspicion_mul = [2, 4]\n')
    assert e.source == "s.toml" and e.key == "axes.suspicion_mul" and e.line == 3
    msg = str(e)
    assert msg.startswith("s.toml:3: axes.suspicion_mul: unknown setting 'suspicion_mul'")
    assert "did you mean 'suspicion_mult'?" in msg
    assert all(f in msg for f in CONFIG_FIELDS)
    assert "nodes" in msg and "duration" in msg and "network.loss" in msg


@pytest.mark.parametrize(
    ("text", "key", "wanted"),
    [
        ('seeds = 2\n', "scenario", "missing"),
        ('scenario = "nonesuch"\n', "scenario", "not a file and not a shipped scenario"),
        ('scenario = "crash"\nseed = 3\n', "seed", "did you mean 'seeds'?"),
        ('scenario = "crash"\nseeds = 0\n', "seeds", "expected an integer N >= 1"),
        ('scenario = "crash"\nseeds = [1, 1]\n', "seeds", "repeated"),
        ('scenario = "crash"\n[axes]\nnodes = 5\n', "axes.nodes", "single value goes in [fixed]"),
        ('scenario = "crash"\n[axes]\nnodes = []\n', "axes.nodes", "empty list"),
        ('scenario = "crash"\n[axes]\nnodes = [5, 5]\n', "axes.nodes", "listed twice"),
        ('scenario = "crash"\n[axes]\nseed = [1, 2]\n', "axes.seed", "not an axis"),
        ('scenario = "crash"\n[axes]\nnetwrk.loss = [0.1]\n', "axes.netwrk.loss",
         "did you mean 'network'?"),
        ('scenario = "crash"\n[axes]\n"events.delay" = [1]\n', "axes.events.delay",
         "say which element"),
        ('scenario = "crash"\n[axes]\nnodes = { start = 1, stop = 5 }\n', "axes.nodes",
         "either step or num"),
        ('scenario = "crash"\n[fixed]\nnodes = 5\n[axes]\nnodes = [1, 2]\n', "axes.nodes",
         "also set in [fixed]"),
        ('scenario = "crash"\n[axes]\nsuspicion_mult = [1]\n"config.suspicion_mult" = [2]\n',
         "axes.config.suspicion_mult", "the same setting"),
    ],
)
def test_bad_files_give_one_line_naming_the_key(text: str, key: str, wanted: str) -> None:
    e = error(text)
    assert e.key == key and wanted in str(e) and str(e).startswith("s.toml")


def test_toml_syntax_errors_have_a_line() -> None:
    e = error('scenario = "crash"\n[axes\n')
    assert e.line == 2 and "not valid TOML" in str(e)


def test_a_scenario_file_is_read_relative_to_the_sweep_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.toml").write_text("nodes = 7\n")
    (tmp_path / "sweep.toml").write_text('scenario = "sub/mine.toml"\n[axes]\nnodes = [3]\n')
    s = load_spec(tmp_path / "sweep.toml")
    assert s.scenario_data == {"nodes": 7, "name": "mine"}
    assert s.scenario_source == str(tmp_path / "sub" / "mine.toml")
    (tmp_path / "bad.toml").write_text('scenario = "missing.toml"\n')
    with pytest.raises(SweepError, match=r"bad.toml:1: scenario: 'missing.toml': no such file"):
        load_spec(tmp_path / "bad.toml")


def test_an_inline_scenario_table() -> None:
    s = parse_spec('[scenario]\nnodes = 4\n[[scenario.events]]\nat = "1s"\naction = "crash"\n'
                   "node = 0\n", source="s.toml")
    assert s.scenario_ref == "[scenario]" and s.scenario_data["events"][0]["node"] == 0


def test_parse_path() -> None:
    assert parse_path("probe_interval") == ("config", "probe_interval")
    assert parse_path("duration") == ("duration",)
    assert parse_path("links[2].loss") == ("links", 2, "loss")
    with pytest.raises(ValueError, match="assigned by the simulator"):
        parse_path("config.name")


def test_shipped_sweeps_parse() -> None:
    assert "lan-loss-starved" in list_sweeps()
    for name in list_sweeps():
        s = load_spec(name)
        assert s.description and s.tasks > 1
    with pytest.raises(SweepError, match="shipped sweeps: lan-loss-starved"):
        load_spec("nonesuch")
