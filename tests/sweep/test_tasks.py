"""Points, tasks and their keys; the canonical TOML a point's scenario is written as."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimpy.sim import parse_scenario
from swimpy.sweep.spec import SweepError, parse_spec
from swimpy.sweep.tasks import expand, task_key
from swimpy.sweep.toml import dumps

_keys = st.text(min_size=1, max_size=8)
_scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(_keys, _values, max_size=6))
def test_dumps_reads_back_equal(data: dict[str, Any]) -> None:
    assert tomllib.loads(dumps(data)) == data


def test_dumps_is_canonical() -> None:
    assert dumps({"b": 1, "a": {"y": [1, 2.5], "x": "s"}}) == dumps(
        {"a": {"x": "s", "y": [1, 2.5]}, "b": 1})
    with pytest.raises(TypeError):
        dumps({"a": object()})


SPEC = """
scenario = "crash"
seeds = [1, 2]
[fixed]
duration = "30s"
network.loss = 0.01
[axes]
nodes = [10, 20]
suspicion_mult = [2, 4, 6]
"""


def test_points_vary_the_first_axis_slowest_and_tasks_run_every_seed() -> None:
    points, tasks = expand(parse_spec(SPEC, source="s.toml"))
    assert [dict(p.values) for p in points[:4]] == [
        {"nodes": 10, "suspicion_mult": 2}, {"nodes": 10, "suspicion_mult": 4},
        {"nodes": 10, "suspicion_mult": 6}, {"nodes": 20, "suspicion_mult": 2}]
    assert len(tasks) == 12 and [t.index for t in tasks] == list(range(12))
    assert [(t.point_index, t.seed) for t in tasks[:3]] == [(0, 1), (0, 2), (1, 1)]
    assert len({t.key for t in tasks}) == 12
    sc = parse_scenario(points[4].scenario_text)
    assert (sc.name, sc.nodes, sc.duration, sc.loss) == ("crash", 20, 30.0, 0.01)
    assert sc.base_config().suspicion_mult == 4
    assert points[4].label() == "nodes=20, suspicion_mult=4"


def test_keys_hash_point_seed_scenario_text_and_version() -> None:
    _, tasks = expand(parse_spec(SPEC, source="s.toml"))
    t = tasks[0]
    assert t.key == task_key(t.point, t.seed, t.scenario_text, t.version)
    assert len({
        t.key,
        task_key(t.point, t.seed + 1, t.scenario_text, t.version),
        task_key({**t.point, "nodes": 11}, t.seed, t.scenario_text, t.version),
        task_key(t.point, t.seed, t.scenario_text + "\n", t.version),
        task_key(t.point, t.seed, t.scenario_text, "9.9.9"),
    }) == 5
    # The same sweep written differently (a quoted dotted key, another source) is the same.
    again = SPEC.replace("network.loss", '"network.loss"')
    assert [x.key for x in expand(parse_spec(again, source="other.toml"))[1]] == [
        x.key for x in tasks]


def test_a_point_the_scenario_refuses_is_reported_before_anything_runs() -> None:
    bad = 'scenario = "crash"\n[axes]\nnetwork.loss = [0.1, 2.0]\n'
    with pytest.raises(SweepError) as info:
        expand(parse_spec(bad, source="s.toml"))
    msg = str(info.value)
    assert msg.startswith("s.toml: axes.network.loss: the scenario (swimpy/scenarios/crash.toml)")
    assert "network.loss=2.0" in msg and "expected a probability" in msg
    unknown = 'scenario = "crash"\n[axes]\nnetwork.lss = [0.1]\n'
    with pytest.raises(SweepError, match=r"axes.network.lss: .*did you mean 'loss'"):
        expand(parse_spec(unknown, source="s.toml"))
    cfg = 'scenario = "crash"\n[axes]\nprobe_timeout = ["2s"]\n'
    with pytest.raises(SweepError, match=r"axes.probe_timeout: .*at most probe_interval"):
        expand(parse_spec(cfg, source="s.toml"))
    index = 'scenario = "crash"\n[axes]\n"events[3].at" = ["1s"]\n'
    with pytest.raises(SweepError, match=r"axes.events\[3\].at: the scenario has no events\[3\]"):
        expand(parse_spec(index, source="s.toml"))


def test_the_version_in_the_key_covers_the_engine_code(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    import swimpy
    from swimpy.sweep import tasks as tasks_mod

    version = tasks_mod.code_version()
    assert re.fullmatch(re.escape(swimpy.__version__) + r"\+[0-9a-f]{12}", version)
    spec = parse_spec(SPEC, source="s.toml")
    before = [t.key for t in expand(spec)[1]]
    assert {t.version for t in expand(spec)[1]} == {version}
    # Another engine (an edited swimpy/core, sim, wire or profiles.py): new keys.
    monkeypatch.setattr(tasks_mod, "code_version", lambda: swimpy.__version__ + "+000000000000")
    after = expand(spec)[1]
    assert not set(before) & {t.key for t in after}
    # A worker with other code refuses the task rather than answer for this engine.
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="install the same version everywhere"):
        tasks_mod.run_task(after[0])


def test_a_key_with_a_trailing_newline_is_quoted() -> None:
    # found by hypothesis: re's "$" matches before a final newline
    assert tomllib.loads(dumps({"0\n": []})) == {"0\n": []}
