"""The simulator's event loop, network effects, faults and results (virtual time)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swimpy.core import JoinRequested, State
from swimpy.sim import Simulation, list_scenarios, load_scenario, parse_scenario, run
from swimpy.sim.runner import Progress, percentile

ROOT = Path(__file__).resolve().parents[2]

SMALL_CRASH = """
nodes = 5
duration = "40s"
[network]
latency = { dist = "uniform", low = "0.2ms", high = "1ms" }
[groups]
victim = { count = 1 }
[[events]]
at = "10s"
action = "crash"
group = "victim"
"""


def small(extra: str = "", base: str = SMALL_CRASH) -> Simulation:
    return Simulation(parse_scenario(base + extra, source="test.toml"), 1)


# ------------------------------------------------------------------ determinism


def test_same_seed_gives_the_same_trace() -> None:
    sc = parse_scenario(SMALL_CRASH, source="t.toml")
    assert run(sc, seed=4)["trace_sha256"] == run(sc, seed=4)["trace_sha256"]


def test_different_seed_gives_a_different_trace() -> None:
    sc = parse_scenario(SMALL_CRASH, source="t.toml")
    assert run(sc, seed=4)["trace_sha256"] != run(sc, seed=5)["trace_sha256"]


def test_fast_and_wire_fidelity_give_the_same_trace() -> None:
    sc = parse_scenario(SMALL_CRASH, source="t.toml")
    fast = run(sc, seed=2, fidelity="fast")
    wire = run(sc, seed=2, fidelity="wire")
    assert fast["trace_sha256"] == wire["trace_sha256"]
    assert fast["bytes_mode"] == "encoded-uncompressed"
    assert wire["bytes_mode"] == "wire"
    assert fast["packets"]["sent"] == wire["packets"]["sent"]


def test_fidelity_modes_agree_when_joining_with_encryption() -> None:
    text = (
        'nodes = 4\nduration = "20s"\n[config]\n'
        'secret_keys = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="\n'
        '[start]\nmode = "join"\njoin_window = "2s"\n'
    )
    sc = parse_scenario(text, source="t.toml")
    fast = run(sc, seed=3, fidelity="fast")
    wire = run(sc, seed=3, fidelity="wire")
    assert fast["trace_sha256"] == wire["trace_sha256"]
    assert wire["convergence_s"] is not None


def test_trace_does_not_depend_on_pythonhashseed() -> None:
    code = (
        "from swimpy.sim import run, parse_scenario\n"
        f"sc = parse_scenario({SMALL_CRASH!r})\n"
        "print(run(sc, seed=9, duration=20)['trace_sha256'])\n"
    )
    out = set()
    for hs in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hs, "PYTHONPATH": str(ROOT)}
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        out.add(res.stdout.strip())
    assert len(out) == 1


# ------------------------------------------------------------------ start modes


def test_converged_start_shares_immutable_member_records() -> None:
    sim = small()
    a, b = sim.nodes[0], sim.nodes[1]
    assert a is not None and b is not None
    peer = sim.names[3]
    assert a.member(peer) is b.member(peer)
    assert all(len(n.members()) == 5 for n in sim.nodes if n is not None)
    assert sim.metrics.total == 0  # converged from the first instant
    # each member's own record is its own
    assert a.member(sim.names[0]) is not b.member(sim.names[0])


def test_converged_members_probe_in_different_orders() -> None:
    sim = small()
    orders = {tuple(n._members.order.next() for _ in range(4)) for n in sim.nodes if n}
    assert len(orders) > 1


def test_join_start_forms_the_cluster() -> None:
    text = 'nodes = 8\nduration = "30s"\n[start]\nmode = "join"\njoin_window = "3s"\n'
    r = run(parse_scenario(text), seed=1)
    assert r["convergence_s"] is not None
    assert r["convergence_s"] < 5.0


# ------------------------------------------------------------------ faults


def test_crash_is_detected_in_order_suspect_dead_all_dead() -> None:
    r = run(parse_scenario(SMALL_CRASH), seed=1)
    (name, d), = r["detections"].items()
    assert name == "node-004" and d["kind"] == "crash" and d["at_s"] == 10.0
    assert 0 < d["first_suspect_s"] <= d["first_dead_s"] <= d["all_dead_s"]
    assert r["false_deaths"] == 0 and r["convergence_s"] == d["all_dead_s"]


def test_graceful_leave_is_seen_as_left_quickly_and_not_as_a_death() -> None:
    text = SMALL_CRASH.replace('action = "crash"', 'action = "leave"')
    sim = Simulation(parse_scenario(text), 1)
    r = sim.run()
    (name, d), = r["detections"].items()
    assert d["kind"] == "leave"
    assert d["all_left_s"] is not None and d["all_left_s"] < 2.0
    assert r["false_deaths"] == 0
    assert not sim.running[4]  # stopped after LeaveCompleted
    for i in range(4):
        node = sim.nodes[i]
        assert node is not None
        m = node.member(name)
        assert m is None or m.state == State.LEFT


def test_restart_under_the_same_name_refutes_and_rejoins() -> None:
    sim = small()
    sim.run_until(40.0)
    assert not sim.running[4]
    sim.restart(4)
    sim.run_until(60.0)
    assert sim.metrics.total == 0
    node = sim.nodes[0]
    assert node is not None
    m = node.member(sim.names[4])
    assert m is not None and m.state == State.ALIVE and m.incarnation > 1
    det = sim.result()["detections"]["node-004"]
    assert det["restarted_s"] == pytest.approx(30.0)


def test_partition_deaths_are_counted_apart_from_false_deaths() -> None:
    text = """
nodes = 6
duration = "200s"
[groups]
a = [0.0, 0.5]
b = [0.5, 1.0]
[[events]]
at = "5s"
action = "partition"
between = ["a", "b"]
until = "60s"
"""
    sim = Simulation(parse_scenario(text), 2)
    r = sim.run()
    assert r["partition_deaths"] > 0 and r["partition_suspicions"] > 0
    assert r["false_deaths"] == 0
    assert r["packets"]["dropped"]["partition"] > 0
    assert r["convergence_s"] is not None


def test_stream_across_a_partition_fails_after_its_timeout() -> None:
    text = 'nodes = 2\nduration = "100s"\nprofile = "lan"\n[start]\nmode = "join"\n'
    sim = Simulation(parse_scenario(text), 1)
    # member 1 starts at 0 too; cut it off before it joins: run nothing yet
    sim.partition([0], [1])
    sim.run_until(9.9)
    n1 = sim.nodes[1]
    assert n1 is not None
    assert n1.stats["stream_errors_join"] == 0  # TCPTimeout is 10 s on LAN
    sim.run_until(10.1)
    assert n1.stats["stream_errors_join"] == 1


def test_stream_to_a_crashed_member_is_refused_after_a_round_trip() -> None:
    text = 'nodes = 3\nduration = "100s"\n'
    sim = Simulation(parse_scenario(text), 1)
    sim.crash(2)
    node = sim.nodes[0]
    assert node is not None
    sim.request(0, JoinRequested((sim.addrs[2],)))
    sim.run_until(0.01)
    assert node.stats["stream_errors_join"] == 1


def test_starved_member_is_falsely_suspected_while_starved() -> None:
    base = 'nodes = 6\nduration = "60s"\n[groups]\nslow = { count = 1 }\n'
    calm = run(parse_scenario(base), seed=1)
    starved = run(parse_scenario(base + '[[events]]\nat = "5s"\naction = "starve"\n'
                                 'group = "slow"\ndelay = "2s"\nuntil = "40s"\n'), seed=1)
    assert calm["false_suspicions"] == 0
    assert starved["false_suspicions"] > 0
    assert starved["health_score"]["max"] > 0


def test_loss_drops_packets_and_duplication_doubles_them() -> None:
    lossy = run(parse_scenario('nodes = 4\nduration = "30s"\n[network]\nloss = 0.3\n'), seed=1)
    assert lossy["packets"]["dropped"]["loss"] > 0.2 * lossy["packets"]["sent"]
    dup = run(parse_scenario('nodes = 4\nduration = "30s"\n[network]\nduplicate = 1.0\n'), seed=1)
    assert dup["packets"]["delivered"] == 2 * dup["packets"]["sent"]


def test_packets_over_the_size_limit_are_dropped() -> None:
    r = run(parse_scenario('nodes = 4\nduration = "10s"\n[network]\nmax_packet = 64\n'), seed=1)
    assert r["packets"]["dropped"].get("oversize", 0) > 0


def test_tracked_views_match_the_tables_through_churn() -> None:
    text = """
nodes = 10
duration = "120s"
[start]
absent = "spare"
[groups]
churn = [0.5, 1.0]
spare = [0.9, 1.0]
[[events]]
at = "5s"
action = "churn"
group = "churn"
until = "80s"
interval = "3s"
crash_fraction = 0.5
[[events]]
at = "30s"
action = "partition"
between = ["spare"]
until = "50s"
"""
    sim = Simulation(parse_scenario(text), 3)
    t = 0.0
    while t < 120:
        t += 1.0
        sim.run_until(t)
        sim.check_views()


def test_convergence_is_null_when_the_run_ends_before_agreement() -> None:
    text = SMALL_CRASH.replace('at = "10s"', 'at = "39.5s"')
    r = run(parse_scenario(text), seed=1)
    assert r["convergence_s"] is None
    assert r["detections"]["node-004"]["all_dead_s"] is None


# ------------------------------------------------------------------ results


def test_result_has_the_documented_fields() -> None:
    r = run(parse_scenario(SMALL_CRASH), seed=1)
    for key in (
        "scenario", "seed", "nodes", "profile", "simulated_seconds", "wall_seconds",
        "convergence_s", "detections", "false_suspicions", "false_deaths",
        "partition_deaths", "messages_per_node_per_s", "bytes_per_node_per_s", "bytes_mode",
        "trace_sha256",
    ):
        assert key in r, key
    assert r["simulated_seconds"] == 40.0 and r["nodes"] == 5 and r["profile"] == "lan"
    assert r["messages_per_node_per_s"] > 0 and r["bytes_per_node_per_s"] > 0
    json.dumps(r)


def test_several_runs_are_summarised_with_median_and_p99() -> None:
    r = run(parse_scenario(SMALL_CRASH), seed=10, runs=3)
    assert [x["seed"] for x in r["runs"]] == [10, 11, 12]
    s = r["summary"]
    for key in ("convergence_s", "first_suspect_s", "first_dead_s", "all_dead_s"):
        assert set(s[key]) >= {"median", "p99"}
        assert s[key]["n"] == 3


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(map(float, range(101))), 99) == 99.0


def test_progress_bar_writes_one_line_to_its_stream() -> None:
    buf = io.StringIO()
    bar = Progress("crash", runs=1, stream=buf)
    bar(30.0, 60.0)
    bar.close()
    out = buf.getvalue()
    assert out.startswith("\rcrash [") and "50.0%" in out and out.endswith("\n")


def test_timeline_is_recorded_on_request() -> None:
    r = run(parse_scenario(SMALL_CRASH), seed=1, timeline=True)
    tl = r["timeline"]
    assert len(tl["t"]) == len(tl["correct_fraction"]) > 10
    assert tl["correct_fraction"][0] == 1.0
    assert any(what.startswith("crash") for _, what in r["disruptions"])


@pytest.mark.parametrize("name", list_scenarios())
def test_every_shipped_scenario_runs_when_scaled_down(name: str) -> None:
    sc = load_scenario(name)
    small_sc = sc.with_overrides(nodes=min(sc.nodes, 30), duration=min(sc.duration, 60.0))
    r = run(small_sc, seed=1)
    assert r["simulated_seconds"] == small_sc.duration
    assert r["events_processed"] > 0


# ------------------------------------------------------------------ nobody left to detect it


def test_a_crash_nobody_can_detect_is_not_applicable_and_not_pooled() -> None:
    # A 1-member cluster: its crash has no observer, so no detection time at all (it used
    # to read "first dead never, all dead 0.000 s" and pool 0 into the summary).
    one = load_scenario("crash").with_overrides(nodes=1, duration=20.0)
    r = run(one, seed=1)
    (d,) = r["detections"].values()
    assert d["applicable"] is False
    assert d["first_dead_s"] is None and d["all_dead_s"] is None
    many = run(one, seed=1, runs=3)
    for key in ("first_suspect_s", "first_dead_s", "all_dead_s"):
        assert key not in many["summary"], "no pooled value, not even a 'never'"


def test_a_crash_whose_observers_all_stop_first_is_not_applicable() -> None:
    text = SMALL_CRASH.replace("nodes = 5", "nodes = 3") + (
        '[[events]]\nat = "10.001s"\naction = "crash"\nnode = 0\n'
        '[[events]]\nat = "10.002s"\naction = "crash"\nnode = 1\n'
    )
    r = run(parse_scenario(text), seed=1)
    assert r["detections"]["node-002"]["applicable"] is False
    assert r["detections"]["node-002"]["all_dead_s"] is None
    # A crash that is detected stays applicable, with its times.
    d = run(parse_scenario(SMALL_CRASH), seed=1)["detections"]["node-004"]
    assert d["applicable"] is True and d["all_dead_s"] is not None


def test_the_summary_pools_only_applicable_detections() -> None:
    from swimpy.sim import summarize

    det = {"kind": "crash", "at_s": 1.0, "first_suspect_s": 1.0, "first_dead_s": 5.0,
           "all_dead_s": 6.0}
    na = {**det, "applicable": False, "first_suspect_s": None, "first_dead_s": None,
          "all_dead_s": None}
    s = summarize([{"detections": {"a": {**det, "applicable": True}, "b": na}}])
    assert s["all_dead_s"] == {"median": 6.0, "p99": 6.0, "n": 1, "nulls": 0}


# ------------------------------------------------------------------ which members were picked


def test_the_result_says_which_members_groups_and_random_counts_picked() -> None:
    text = """
nodes = 10
duration = "30s"
[groups]
left = [0.0, 0.5]
spares = { count = 3, offset = 0.2 }
[[events]]
at = "2s"
action = "crash"
group = "left"
count = 2
[[events]]
at = "3s"
action = "partition"
between = ["spares"]
until = "4s"
[[events]]
at = "5s"
action = "crash"
node = -1
"""
    r = run(parse_scenario(text), seed=7)
    assert r["groups"] == {"left": ["node-000..node-004"], "spares": ["node-002..node-004"]}
    crash, part, last = r["events"]
    assert (crash["event"], crash["action"], crash["group"], crash["count"]) == (0, "crash",
                                                                                 "left", 2)
    assert crash["eligible"] == 5 and len(crash["members"]) == 2
    assert set(crash["members"]) <= {f"node-00{i}" for i in range(5)}
    assert part["sides"] == [["node-002..node-004"],
                             ["node-000", "node-001", "node-005..node-009"]]
    assert last == {"event": 2, "at_s": 5.0, "action": "crash", "node": -1,
                    "members": ["node-009"]}
    assert set(r["detections"]) == {*crash["members"], "node-009"}
    # the picks come from the scenario's seeded generator: another seed, other members
    picks = {tuple(run(parse_scenario(text), seed=s)["events"][0]["members"]) for s in range(8)}
    assert len(picks) > 1
