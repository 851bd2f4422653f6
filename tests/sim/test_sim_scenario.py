"""Scenario files: parsing, errors that name file/line/key, package data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swimpy.sim import ScenarioError, list_scenarios, load_scenario, parse_scenario
from swimpy.sim.scenario import GroupSpec

ROOT = Path(__file__).resolve().parents[2]
SIMULATIONS = ROOT / "simulations"
PACKAGED = ROOT / "swimpy" / "scenarios"

REQUIRED = {
    "join",
    "crash",
    "partition-half",
    "partition-minority",
    "flapping-link",
    "churn",
    "starved-lifeguard",
    "starved-no-lifeguard",
    "wan-3dc",
    "large",
}


def test_simulations_dir_is_the_package_data_not_a_copy() -> None:
    # One copy: swimpy/scenarios/ holds the files (package data, so wheels ship them) and
    # simulations/ is a relative symlink to it, so there is nothing to keep in step.
    assert SIMULATIONS.is_symlink(), "simulations must be a symlink to swimpy/scenarios"
    assert os.readlink(SIMULATIONS) == os.path.join("swimpy", "scenarios"), (
        "a relative link, so it works wherever the repository is checked out"
    )
    assert not PACKAGED.is_symlink()
    assert SIMULATIONS.resolve() == PACKAGED.resolve()
    names = sorted(p.stem for p in SIMULATIONS.glob("*.toml"))
    assert names and names == list_scenarios()


def test_every_required_experiment_is_shipped() -> None:
    assert set(list_scenarios()) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_shipped_scenario_loads_by_name_and_explains_itself(name: str) -> None:
    sc = load_scenario(name)
    assert sc.name == name
    assert sc.description
    text = (SIMULATIONS / f"{name}.toml").read_text()
    assert text.startswith("#"), "each scenario starts with a comment saying what it shows"
    assert "What it shows" in text


def test_shipped_crash_scenario_starts_converged() -> None:
    assert load_scenario("crash").start.mode == "converged"


def test_scenario_loads_from_a_path(tmp_path: Path) -> None:
    p = tmp_path / "mine.toml"
    p.write_text('nodes = 7\nduration = "2m"\n')
    sc = load_scenario(p)
    assert (sc.name, sc.nodes, sc.duration) == ("mine", 7, 120.0)


def test_unknown_scenario_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match=r"shipped scenarios: .*crash"):
        load_scenario("no-such-scenario")


def test_fraction_groups_scale_with_the_cluster() -> None:
    g = GroupSpec(0.0, 0.5)
    assert g.resolve(10) == tuple(range(5))
    assert g.resolve(1000) == tuple(range(500))
    assert GroupSpec(0.9, 1.0).resolve(5) == (4,)  # never empty
    assert GroupSpec(count=1).resolve(50) == (49,)
    assert GroupSpec(count=2, offset=0.0).resolve(50) == (0, 1)


def test_overrides_rescale_and_revalidate() -> None:
    sc = load_scenario("partition-half").with_overrides(nodes=100, profile="wan")
    assert sc.nodes == 100 and sc.members_of("left") == tuple(range(50))
    assert sc.base_config().probe_interval == 5.0
    with pytest.raises(ScenarioError, match="profile"):
        sc.with_overrides(profile="moon")


def _err(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="bad.toml")
    return info.value


def test_syntax_error_names_file_and_line() -> None:
    e = _err('nodes = 5\nduration = "60s"\n[network\n')
    assert str(e).startswith("bad.toml:3:")
    assert "not valid TOML" in str(e)


def test_bad_value_names_file_line_key_and_expectation() -> None:
    e = _err('nodes = 5\n\n[network]\nloss = 1.5\n')
    assert e.key == "network.loss" and e.line == 4
    assert str(e) == "bad.toml:4: network.loss: 1.5: expected a probability between 0 and 1"


def test_error_in_an_event_points_at_its_line() -> None:
    text = (
        'nodes = 5\n[groups]\nvictim = { count = 1 }\n\n'
        '[[events]]\nat = "5s"\naction = "crash"\ngroup = "victim"\n\n'
        '[[events]]\nat = "soon"\naction = "crash"\ngroup = "victim"\n'
    )
    e = _err(text)
    assert e.key == "events[1].at" and e.line == 11
    assert "expected a duration" in str(e)


def test_unknown_key_suggests_the_right_one() -> None:
    e = _err('nodes = 5\n[[events]]\nat = "1s"\naction = "crash"\ngrup = "x"\n')
    assert e.key == "events[0].grup" and e.line == 5
    assert "did you mean 'group'" in str(e)


def test_undefined_group_is_reported_with_the_defined_ones() -> None:
    e = _err('[groups]\na = [0.0, 0.5]\n[[events]]\nat = "1s"\naction = "crash"\ngroup = "b"\n')
    assert e.key == "events[0].group"
    assert "not a group" in str(e) and "defined: a" in str(e)


def test_bad_group_range_says_what_is_expected() -> None:
    e = _err("[groups]\nleft = [0.5, 0.2]\n")
    assert e.key == "groups.left" and e.line == 2
    assert "fraction range" in str(e)


def test_bad_config_override_is_reported_as_a_scenario_error() -> None:
    e = _err("nodes = 3\n[config]\nprobe_timeout = \"5s\"\n")
    assert e.key == "config.probe_timeout" and e.line == 3
    assert "probe_interval" in str(e)


def test_unknown_config_key_is_reported() -> None:
    e = _err("[config]\nprobe_intervall = \"1s\"\n")
    assert e.key == "config.probe_intervall"
    assert "probe_interval" in str(e)


def test_event_after_the_end_is_refused() -> None:
    e = _err('duration = "10s"\n[[events]]\nat = "20s"\naction = "heal"\n')
    assert e.key == "events[0].at" and "after the end" in str(e)


def test_partition_needs_sides() -> None:
    e = _err('[[events]]\nat = "1s"\naction = "partition"\n')
    assert "between" in str(e)


def test_latency_distribution_parameters_are_checked() -> None:
    e = _err('[network]\nlatency = { dist = "uniform", low = "2ms" }\n')
    assert e.key == "network.latency.high" and e.line == 2
    ok = parse_scenario('[network]\nlatency = { dist = "normal", mean = "30ms", stddev = "3ms" }\n')
    assert ok.latency.dist == "normal" and ok.latency.a == pytest.approx(0.03)


# ------------------------------------------------------------------ members, checked up front

EVENTS_FILE = """nodes = 10
duration = "60s"

[groups]
rack = [0.8, 1.0]
pair = { count = 2, offset = 0.5 }

[[events]]
at = "5s"
action = "crash"
node = NODE

[[events]]
at = "10s"
action = "starve"
group = "rack"
count = COUNT
delay = "1s"

[[events]]
at = "20s"
action = "flap"
between = ["rack"]
down = "2s"
up = "3s"
until = "UNTIL"
"""


def _events_file(node: int = 3, count: int = 1, until: str = "40s") -> str:
    return (EVENTS_FILE.replace("NODE", str(node)).replace("COUNT", str(count))
            .replace("UNTIL", until))


def test_an_events_file_within_bounds_parses() -> None:
    sc = parse_scenario(_events_file(node=-10, count=2, until="60s"))
    assert sc.members_of("pair") == (5, 6) and sc.members_of("rack") == (8, 9)


@pytest.mark.parametrize(
    ("kw", "key", "line", "wanted"),
    [
        ({"node": 10}, "events[0].node", 11,
         "10 is not a member index of a 10-member cluster: expected 0..9, or -10..-1"),
        ({"node": -11}, "events[0].node", 11, "-11 is not a member index"),
        ({"count": 3}, "events[1].count", 17,
         "count = 3, but group 'rack' has only 2 members in a 10-member cluster"),
        ({"until": "61s"}, "events[2].until", 26,
         "61 s is after the end of the run (duration = 60 s)"),
    ],
)
def test_member_indices_counts_and_until_are_checked_with_their_line(
    kw: dict[str, object], key: str, line: int, wanted: str
) -> None:
    e = _err(_events_file(**kw))  # type: ignore[arg-type]
    assert (e.key, e.line) == (key, line) and wanted in str(e)
    assert str(e).startswith(f"bad.toml:{line}: {key}: ")


def test_a_count_group_larger_than_the_cluster_is_refused_not_clamped() -> None:
    e = _err('nodes = 3\n[groups]\nslow = { count = 5 }\n')
    assert (e.key, e.line) == ("groups.slow", 3)
    assert "count = 5, but the cluster has only 3 members" in str(e)
    e = _err('nodes = 10\n[groups]\nend = { count = 3, offset = 0.9 }\n')
    assert (e.key, e.line) == ("groups.end", 3)
    assert "members 9..11, past the last member (9) of 10 members" in str(e)
    with pytest.raises(ValueError, match="only 3 members"):
        GroupSpec(count=5).resolve(3)


def test_count_with_a_single_node_is_refused() -> None:
    e = _err('[[events]]\nat = "1s"\naction = "crash"\nnode = 1\ncount = 2\n')
    assert (e.key, e.line) == ("events[0].count", 5)


def test_shrinking_the_cluster_below_an_index_or_a_count_is_refused_with_the_line() -> None:
    sc = parse_scenario(_events_file(node=7), source="bad.toml")
    with pytest.raises(ScenarioError) as info:
        sc.with_overrides(nodes=5)
    e = info.value
    assert (e.key, e.line) == ("events[0].node", 11)
    assert "not a member index of a 5-member cluster (resized from the file's nodes = 10)" in str(e)
    sc = parse_scenario(_events_file(node=0, count=2), source="bad.toml")
    with pytest.raises(ScenarioError) as info:
        sc.with_overrides(nodes=4)  # rack = [0.8, 1.0) is one member of 4
    assert (info.value.key, info.value.line) == ("events[1].count", 17)
    assert sc.with_overrides(nodes=20).members_of("rack") == (16, 17, 18, 19)


def test_a_scenario_built_in_python_is_checked_before_the_simulation_starts() -> None:
    from swimpy.sim import Simulation
    from swimpy.sim.scenario import EventSpec, Scenario

    sc = Scenario(name="x", source="<py>", nodes=3,
                  events=(EventSpec(at=1.0, action="crash", index=0, node=5),))
    with pytest.raises(ScenarioError, match=r"events\[0\]\.node: 5 is not a member index"):
        Simulation(sc, 1)


def test_offset_and_picks_are_documented() -> None:
    doc = (ROOT / "docs" / "simulator.md").read_text()
    assert "`round(offset \N{MULTIPLICATION SIGN} nodes)`" in doc
    assert "| `groups` |" in doc and "| `events` |" in doc and "`applicable`" in doc
