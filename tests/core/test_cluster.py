"""Two to five engines over the in-memory driver (swimpy.testing), in virtual time.

Every scenario runs over real wire bytes (encode=True) unless it says otherwise.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from swimpy.core import (
    BroadcastRequested,
    Delegate,
    EventKind,
    JoinCompleted,
    JoinRequested,
    LeaveCompleted,
    LeaveRequested,
    MetaUpdateRequested,
    PingCompleted,
    State,
    UserMessageReceived,
    UserMessageRequested,
)
from swimpy.profiles import lan
from swimpy.testing import VirtualCluster as Harness
from swimpy.testing import assert_table_consistent


def cluster(names: str = "abc", **kw: object) -> Harness:
    h = Harness(**kw)  # type: ignore[arg-type]
    for n in names:
        h.add(n)
    for n in names[1:]:
        h.do(n, JoinRequested((h.addr(names[0]),)))
    h.run_until(h.now + 2.0)
    return h


def first_event(
    h: Harness, observer: str, kind: EventKind, subject: str, after: float = 0.0
) -> float | None:
    for t, who, e in h.events:
        if t >= after and who == observer and e.kind == kind and e.member.name == subject:
            return t
    return None


def test_join_makes_every_member_see_every_other() -> None:
    h = cluster("abcd")
    for n in "abcd":
        assert h.view(n) == {m: "alive" for m in "abcd"}
    done = [a for _, who, a in h.actions if isinstance(a, JoinCompleted)]
    assert all(d.contacted == 1 and not d.errors for d in done) and len(done) == 3


def test_join_to_nobody_reports_an_error() -> None:
    h = Harness()
    h.add("a")
    rid = h.do("a", JoinRequested((("127.0.0.1", 1),)))
    h.run_until(1.0)
    done = [a for _, _, a in h.actions if isinstance(a, JoinCompleted)]
    assert done[0].request_id == rid and done[0].contacted == 0 and done[0].errors


def test_probes_are_acked_and_rtt_reported() -> None:
    h = cluster("ab", latency=0.005)
    h.run_until(10.0)
    rtts = [a for _, who, a in h.actions if isinstance(a, PingCompleted) and who == "a"]
    assert rtts and all(r.name == "b" and r.rtt == pytest.approx(0.01) for r in rtts)
    assert h.nodes["a"].stats["probes_failed"] == 0


def test_indirect_probe_keeps_a_member_alive_when_the_direct_path_is_broken() -> None:
    h = cluster("abcd")
    h.drop = lambda s, d: {s, d} == {"a", "b"}  # a <-> b broken, both reach c and d
    h.run_until(60.0)
    assert h.view("a")["b"] == "alive" and h.view("b")["a"] == "alive"
    assert h.nodes["a"].stats["indirect_probes"] > 0
    assert first_event(h, "a", EventKind.DEAD, "b") is None


def test_crash_is_suspected_then_declared_dead_by_everyone() -> None:
    h = cluster("abc")
    t0 = h.now
    h.crash("c")
    h.run_until(t0 + 30.0)
    for obs in "ab":
        s = first_event(h, obs, EventKind.SUSPECT, "c", t0)
        d = first_event(h, obs, EventKind.DEAD, "c", t0)
        assert s is not None and d is not None
        # two peers each: c's turn comes within two rounds of a 2-entry round-robin, and a
        # failed probe takes 1 s; gossip of the other survivor's suspicion can come first.
        assert 0.5 <= s - t0 <= 5.01
        # n = 3 -> k = 0 -> exactly the 4 s minimum suspicion after this observer's own start
        assert d - s == pytest.approx(4.0, abs=0.01)
    assert h.view("a")["c"] == "dead"


def test_suspected_member_refutes_and_stays_alive() -> None:
    h = cluster("abcd")
    # c is cut off for 2.5 s: long enough to be suspected, shorter than the suspicion
    t0 = h.now
    h.drop = lambda s, d: "c" in (s, d) and h.now < t0 + 2.5
    h.run_until(t0 + 30.0)
    suspected = [first_event(h, o, EventKind.SUSPECT, "c", t0) for o in "abd"]
    assert any(t is not None for t in suspected)
    assert h.nodes["c"].stats["refutations"] >= 1
    for o in "abd":
        assert h.view(o)["c"] == "alive"
        assert first_event(h, o, EventKind.DEAD, "c", t0) is None
    assert h.nodes["c"].incarnation >= 2


def test_graceful_leave_is_seen_as_left_not_failed() -> None:
    h = cluster("abc")
    t0 = h.now
    rid = h.do("c", LeaveRequested())
    h.run_until(t0 + 5.0)
    assert [a.request_id for _, w, a in h.actions if isinstance(a, LeaveCompleted) and w == "c"] == [rid]
    h.crash("c")  # shut down after leaving
    h.run_until(t0 + 30.0)
    for o in "ab":
        assert first_event(h, o, EventKind.LEFT, "c", t0) is not None
        assert first_event(h, o, EventKind.DEAD, "c", t0) is None


def test_restart_after_being_declared_dead_rejoins_with_higher_incarnation() -> None:
    h = cluster("abc")
    h.crash("c")
    h.run_until(h.now + 20.0)
    assert h.view("a")["c"] == "dead"
    t1 = h.now
    h.add("c")  # same name, same address, fresh incarnation 1
    h.do("c", JoinRequested((h.addr("a"),)))
    h.run_until(t1 + 5.0)
    for o in "ab":
        assert h.view(o)["c"] == "alive"
        assert first_event(h, o, EventKind.JOINED, "c", t1) is not None
    assert h.nodes["c"].incarnation > 1


def test_metadata_update_reaches_every_member() -> None:
    h = cluster("abc")
    h.do("a", MetaUpdateRequested(b"role=db"))
    h.run_until(h.now + 3.0)
    for o in "bc":
        m = h.nodes[o].member("a")
        assert m is not None and m.meta == b"role=db"
        assert first_event(h, o, EventKind.UPDATED, "a") is not None


def test_user_messages_and_broadcasts_are_delivered() -> None:
    h = cluster("abc")
    h.do("a", UserMessageRequested("b", b"udp-hello"))
    h.do("a", UserMessageRequested("c", b"tcp-hello", reliable=True))
    h.do("a", BroadcastRequested(b"to-all"))
    h.run_until(h.now + 3.0)
    got = {
        (w, a.payload, a.reliable) for _, w, a in h.actions if isinstance(a, UserMessageReceived)
    }
    assert ("b", b"udp-hello", False) in got
    assert ("c", b"tcp-hello", True) in got
    assert ("b", b"to-all", False) in got and ("c", b"to-all", False) in got


class StateDelegate(Delegate):
    def __init__(self, mine: bytes) -> None:
        self.mine = mine
        self.seen: list[tuple[bytes, bool]] = []

    def local_state(self, join: bool) -> bytes:
        return self.mine

    def merge_remote_state(self, buf: bytes, join: bool) -> None:
        self.seen.append((buf, join))


def test_push_pull_ships_user_state_both_ways() -> None:
    h = Harness()
    da, db = StateDelegate(b"A-state"), StateDelegate(b"B-state")
    h.add("a", delegate=da)
    h.add("b", delegate=db)
    h.do("b", JoinRequested((h.addr("a"),)))
    h.run_until(1.0)
    assert (b"B-state", True) in da.seen and (b"A-state", True) in db.seen


def test_encrypted_and_compressed_cluster_forms_and_detects_failure() -> None:
    key = bytes(range(16))
    h = Harness()
    for n in "abc":
        h.add(n, secret_keys=(key,))
    h.do("b", JoinRequested((h.addr("a"),)))
    h.do("c", JoinRequested((h.addr("a"),)))
    h.run_until(3.0)
    assert h.view("c") == {"a": "alive", "b": "alive", "c": "alive"}
    h.crash("c")
    h.run_until(30.0)
    assert h.view("a")["c"] == "dead"


def test_node_with_wrong_key_cannot_join() -> None:
    h = Harness()
    h.add("a", secret_keys=(bytes(range(16)),))
    h.add("x", secret_keys=(bytes(16),))
    h.do("x", JoinRequested((h.addr("a"),)))
    h.run_until(3.0)
    done = [a for _, w, a in h.actions if isinstance(a, JoinCompleted) and w == "x"]
    assert done[0].contacted == 0
    assert "x" not in h.view("a")


def test_partition_heals_through_reconnect() -> None:
    h = cluster("abcd")
    t0 = h.now
    left, right = set("ab"), set("cd")
    h.drop = lambda s, d: t0 <= h.now < t0 + 60 and ((s in left) != (d in left))
    h.run_until(t0 + 60.0)
    assert h.view("a").get("c", "reaped") in ("dead", "reaped")
    h.run_until(t0 + 60.0 + 120.0)
    for o in "abcd":
        assert {k for k, v in h.view(o).items() if v == "alive"} == set("abcd"), o
    assert sum(h.nodes[n].stats["reconnect_attempts"] for n in "abcd") > 0
    del right


def test_fast_mode_and_encoded_mode_make_the_same_decisions() -> None:
    def run(encode: bool) -> list[tuple[float, str, str, str]]:
        h = cluster("abcd", encode=encode)
        h.crash("d")
        h.run_until(h.now + 40.0)
        return [(round(t, 6), w, e.kind.value, e.member.name) for t, w, e in h.events]

    assert run(True) == run(False)


# ----------------------------------------------------------------- stateful (hypothesis)


class ClusterMachine(RuleBasedStateMachine):
    """A few nodes with message loss and delays; invariants hold at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.rnd = random.Random(0)
        self.loss = 0.0
        self.h = Harness(latency=0.002, encode=False)
        self.h.drop = lambda s, d: self.rnd.random() < self.loss
        for n in "abcd":
            self.h.add(n, config=lan(push_pull_interval=10.0, reconnect_interval=10.0))
        for n in "bcd":
            self.h.do(n, JoinRequested((self.h.addr("a"),)))
        self.h.run_until(2.0)
        self.incs: dict[tuple[str, str], int] = {}
        self.restarts: dict[str, int] = {}

    @rule(seconds=st.floats(0.1, 20.0))
    def advance(self, seconds: float) -> None:
        self.h.run_until(self.h.now + seconds)

    @rule(loss=st.sampled_from([0.0, 0.05, 0.2, 0.5]))
    def set_loss(self, loss: float) -> None:
        self.loss = loss

    @rule(seed=st.integers(0, 2**16))
    def reseed(self, seed: int) -> None:
        self.rnd.seed(seed)

    @precondition(lambda self: len(self.h.crashed) < 2)
    @rule(name=st.sampled_from("bcd"))
    def crash(self, name: str) -> None:
        self.h.crash(name)

    @precondition(lambda self: bool(self.h.crashed))
    @rule()
    def restart(self) -> None:
        name = sorted(self.h.crashed)[0]
        self.restarts[name] = self.restarts.get(name, 0) + 1
        for key in [k for k in self.incs if name in k]:
            del self.incs[key]  # a restarted node starts again at incarnation 1
        self.h.add(name, config=lan(push_pull_interval=10.0, reconnect_interval=10.0))
        self.h.do(name, JoinRequested((self.h.addr("a"),)))

    @invariant()
    def incarnations_never_decrease(self) -> None:
        # per (observer, subject), while the subject stays in the observer's table and
        # neither of them restarted
        for obs, node in self.h.nodes.items():
            table = node.table()
            for key in [k for k in self.incs if k[0] == obs and k[1] not in table]:
                del self.incs[key]
            if obs in self.h.crashed:
                continue
            for m in table.values():
                key = (obs, m.name)
                prev = self.incs.get(key, 0)
                assert m.incarnation >= prev, (key, prev, m)
                self.incs[key] = m.incarnation

    @invariant()
    def no_node_declares_itself_dead_or_suspect(self) -> None:
        for name, node in self.h.nodes.items():
            me = node.member(name)
            assert me is not None
            assert me.state == State.ALIVE or node.leaving

    @invariant()
    def member_tables_are_consistent_and_queues_bounded(self) -> None:
        for node in self.h.nodes.values():
            assert_table_consistent(node)
            assert len(node._gossip.queue) <= 4 * len(node._members.table) + 16
            assert len(node._prober._acks) <= 64


TestClusterMachine = ClusterMachine.TestCase
TestClusterMachine.settings = settings(
    max_examples=12,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
