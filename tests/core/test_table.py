"""The shared-base member table and the lazily drawn probe order (swimpy.core.table)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swimpy.core import Engine, MemberBase, ObjectCodec
from swimpy.core.member import Member, State
from swimpy.core.table import MemberTable, ProbeOrder
from swimpy.profiles import lan
from swimpy.testing import assert_table_consistent
from swimpy.wire.messages import Alive

VSN = bytes([1, 5, 2, 2, 5, 4])


def rec(name: str, inc: int = 1, state: State = State.ALIVE, at: float = 0.0) -> Member:
    return Member(name, "10.0.0.1", 7946, b"", inc, state, at, VSN, b"\n\x00\x00\x01")


def table_of(n: int, without: str = "self") -> MemberTable:
    t = MemberTable()
    t.bootstrap(MemberBase(rec(f"m{i}") for i in range(n)), without=without)
    return t


def round_names(order: ProbeOrder) -> list[str]:
    out = []
    while (m := order.next()) is not None:
        out.append(m.name)
    return out


# ------------------------------------------------------------------ MemberBase / MemberTable


def test_base_refuses_a_name_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        MemberBase([rec("a"), rec("a")])


def test_table_reads_the_base_and_keeps_changes_in_its_overlay() -> None:
    base = MemberBase(rec(f"m{i}") for i in range(5))
    a, b = MemberTable(), MemberTable()
    a.bootstrap(base, without="m0")
    b.bootstrap(base, without="m1")
    assert len(a) == len(b) == 4 and "m0" not in a and "m0" in b
    assert a["m3"] is b["m3"] is base.records["m3"]  # shared, not copied
    sus = replace(rec("m3"), state=State.SUSPECT)
    assert a.set(sus) is False  # known name
    assert a["m3"] is sus and b["m3"] is base.records["m3"]
    assert a.set(rec("m0")) is True  # our own name, absent until we start
    assert a.set(rec("new")) is True
    assert len(a) == 6 and [m.name for m in a.values()] == ["m0", "m1", "m2", "m3", "m4", "new"]
    assert dict(a.items())["m3"] is sus
    assert a.get("nobody") is None and "nobody" not in a
    with pytest.raises(KeyError):
        a["nobody"]


def test_bootstrap_needs_an_empty_table() -> None:
    t = MemberTable()
    t.set(rec("x"))
    with pytest.raises(ValueError, match="not empty"):
        t.bootstrap(MemberBase([rec("a")]), without="self")


def test_reap_leaves_holes_in_the_base_and_compacts_added_members() -> None:
    t = table_of(6)
    for name in ("m1", "m4"):
        t.set(rec(name, state=State.DEAD, at=1.0))
    for name in ("x", "y", "z"):
        t.set(rec(name))
    t.set(rec("y", state=State.LEFT, at=1.0))
    gone = t.reap(lambda m: m.state in (State.DEAD, State.LEFT))
    assert sorted(gone) == ["m1", "m4", "y"]
    assert len(t) == 6 and "m1" not in t and "y" not in t
    assert t.slot_count == 6 + 2  # base slots stay (two holes), added ones compacted
    assert [t.at(i) is None for i in range(6)] == [False, True, False, False, True, False]
    assert [m.name for m in t.values()] == ["m0", "m2", "m3", "m5", "x", "z"]
    # a forgotten base member may come back, into its old slot
    assert t.set(rec("m1", inc=2)) is True
    at1 = t.at(1)
    assert len(t) == 7 and at1 is not None and at1.incarnation == 2


def test_base_is_dropped_when_most_of_it_is_forgotten() -> None:
    t = table_of(10)
    for i in range(6):
        t.set(rec(f"m{i}", state=State.DEAD))
    t.reap(lambda m: m.state == State.DEAD)
    assert t.slot_count == len(t) == 4  # no holes left
    assert sorted(t) == ["m6", "m7", "m8", "m9"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "dead", "reap"]), st.integers(0, 14)),
                max_size=60))
def test_table_behaves_like_a_dict(ops: list[tuple[str, int]]) -> None:
    t = table_of(10, without="m3")
    model = {f"m{i}": rec(f"m{i}") for i in range(10) if i != 3}
    for op, i in ops:
        name = f"m{i}"
        if op == "set":
            m = rec(name, inc=i + 2)
            assert t.set(m) is (name not in model)
            model[name] = m
        elif op == "dead" and name in model:
            m = replace(model[name], state=State.DEAD)
            t.set(m)
            model[name] = m
        elif op == "reap":
            gone = t.reap(lambda m: m.state == State.DEAD)
            assert sorted(gone) == sorted(n for n, m in model.items() if m.state == State.DEAD)
            model = {n: m for n, m in model.items() if m.state != State.DEAD}
        assert len(t) == len(model)
        assert dict(t.items()) == model
        assert sorted(t) == sorted(model)
        slots = [t.at(s) for s in range(t.slot_count)]
        assert sorted(m.name for m in slots if m is not None) == sorted(model)
        # the bulk reads push/pull uses agree with the one-by-one ones
        assert t.records() == list(t.values())
        names = [f"m{k}" for k in range(16)] + ["m1", "nobody"]
        assert t.get_many(names) == [t.get(n) for n in names]


def test_bulk_reads_without_holes_and_with_an_empty_overlay() -> None:
    t = table_of(6, without="self")  # nobody left out: no holes, nothing in the overlay
    names = ["m0", "m5", "m9", "m2"]
    assert t.get_many(names) == [t.get(n) for n in names]
    assert t.records() == list(t.values())
    t.set(rec("m2", inc=3))
    t.set(rec("new", inc=1))
    assert t.get_many([*names, "new"]) == [t.get(n) for n in [*names, "new"]]
    assert t.records() == list(t.values())
    assert t.records()[-1].name == "new"


# ------------------------------------------------------------------ ProbeOrder


def test_each_round_visits_every_member_once_in_a_new_order() -> None:
    t = table_of(50)
    order = ProbeOrder(t, random.Random(1))
    order.restart()
    rounds = []
    for _ in range(4):
        names = round_names(order)
        assert sorted(names) == sorted(t)
        rounds.append(names)
        order.restart()
    assert len({tuple(r) for r in rounds}) == 4


def test_rounds_are_uniform_shuffles() -> None:
    t = table_of(4, without="nobody")
    order = ProbeOrder(t, random.Random(2))
    counts: Counter[tuple[str, ...]] = Counter()
    for _ in range(24_000):
        order.restart()
        counts[tuple(round_names(order))] += 1
    assert len(counts) == 24
    assert min(counts.values()) > 850 and max(counts.values()) < 1150  # 1000 expected


@pytest.mark.parametrize("n", [1, 2, 7, 16, 100, 2000])
def test_a_round_is_fisher_yates_with_the_engines_draws(n: int) -> None:
    # sparse at first, dense once that is smaller: the same draws, the same order
    t = table_of(n, without="nobody")
    order = ProbeOrder(t, random.Random(n))
    order.restart()
    got = round_names(order)
    rng = random.Random(n)
    ref = list(range(n))
    for pos in range(n):
        j = pos + rng.randrange(n - pos)
        ref[pos], ref[j] = ref[j], ref[pos]
    assert got == [f"m{i}" for i in ref]


def test_the_shuffle_state_stays_small_early_in_a_round() -> None:
    t = table_of(10_000)
    order = ProbeOrder(t, random.Random(7))
    order.restart()
    for _ in range(300):
        order.next()
    assert order._dense is None and len(order.pending_swaps()) <= 300
    for _ in range(400):
        order.next()
    assert order._dense is not None  # 700 draws: past 10,000 / 16 entries
    assert len(order._dense) == 10_000 and order._dense.itemsize == 4


def test_holes_are_skipped() -> None:
    t = table_of(8)
    t.set(rec("m2", state=State.DEAD))
    t.set(rec("m5", state=State.DEAD))
    t.reap(lambda m: m.state == State.DEAD)
    order = ProbeOrder(t, random.Random(3))
    order.restart()
    assert sorted(round_names(order)) == ["m0", "m1", "m3", "m4", "m6", "m7"]


def test_a_member_added_mid_round_joins_it_with_memberlists_odds() -> None:
    # memberlist swaps a new node into a random index of its list: probed this round iff
    # that index is not behind the probe index, i.e. with probability (n - i) / n.
    joined = 0
    trials = 4000
    rng = random.Random(4)
    for k in range(trials):
        t = MemberTable()
        order = ProbeOrder(t, rng)
        for i in range(10):
            t.set(rec(f"m{i}"))
            order.added(f"m{i}")
        seen = [order.next() for _ in range(4)]  # 4 of 10 probed
        name = f"new{k}"
        assert t.set(rec(name))
        order.added(name)
        rest = round_names(order)
        names = [m.name for m in seen if m] + rest
        assert len(names) == len(set(names)) and set(t) - set(names) <= {name}
        joined += name in rest
    # n = 11 after the add, 4 positions passed: 7/11 = 0.636
    assert 0.60 < joined / trials < 0.67


def test_members_waiting_for_the_next_round_keep_out_of_this_one() -> None:
    rng = random.Random(5)
    for _ in range(200):
        t = MemberTable()
        order = ProbeOrder(t, rng)
        for i in range(6):
            t.set(rec(f"m{i}"))
            order.added(f"m{i}")
        first = [order.next() for _ in range(5)]
        for i in range(6):
            t.set(rec(f"late{i}"))
            order.added(f"late{i}")
        rest = round_names(order)
        names = [m.name for m in first if m] + rest
        assert len(names) == len(set(names))  # nobody twice in a round
        assert {f"m{i}" for i in range(6)} <= set(names)
        order.restart()
        assert sorted(round_names(order)) == sorted(t)  # everyone next round


def test_set_round_fixes_the_rest_of_the_round() -> None:
    t = table_of(5)
    order = ProbeOrder(t, random.Random(6))
    order.restart()
    order.set_round(["m3", "m1"])
    assert round_names(order) == ["m3", "m1"]
    order.set_round([])
    assert order.next() is None


# ------------------------------------------------------------------ engines sharing a base


def engine(name: str, rng: int) -> Engine:
    cfg = lan(name=name, bind_port=7946)
    return Engine(cfg, advertise=("10.0.0.1", 7946), rng=random.Random(rng),
                  nonce_source=random.Random(0).randbytes, codec=ObjectCodec())


def test_engines_share_a_base_and_start_with_their_own_record() -> None:
    base = MemberBase(rec(f"m{i}") for i in range(20))
    a, b = engine("m0", 1), engine("m1", 2)
    a.bootstrap_members(base)
    b.bootstrap_members(base)
    a.start(0.0)
    b.start(0.0)
    assert a.num_nodes == b.num_nodes == 20
    assert a.member("m5") is b.member("m5") is base.records["m5"]
    assert a.member("m0") is not base.records["m0"]
    for e in (a, b):
        assert_table_consistent(e)
    # the first round goes over every member once (our own record included: the prober
    # skips it, as memberlist's does)
    seen = [m.name for m in iter(a._members.order.next, None)]
    assert sorted(seen) == sorted(base.records)


def test_bootstrap_members_misuse() -> None:
    e = engine("m0", 1)
    with pytest.raises(ValueError, match="twice"):
        e.bootstrap_members([rec("a"), rec("a")])
    e.bootstrap_members([rec("a"), rec("m0")])  # a plain list: a private base
    assert e.num_nodes == 1  # our own name waits for start()
    with pytest.raises(ValueError, match="not empty"):
        e.bootstrap_members([rec("b")])
    e.start(0.0)
    assert e.num_nodes == 2
    with pytest.raises(RuntimeError, match="before start"):
        e.bootstrap_members([rec("c")])


def test_a_reaped_base_member_rejoins_and_is_probed_again() -> None:
    e = engine("m0", 3)
    e.bootstrap_members(MemberBase(rec(f"m{i}") for i in range(6)))
    e.start(0.0)
    members = e._members
    members.table.set(rec("m4", state=State.DEAD, at=1.0))
    members.reset_nodes(1000.0)  # past gossip_to_the_dead_time: reaped
    assert e.member("m4") is None and e.num_nodes == 5
    assert_table_consistent(e)
    members.alive_node(Alive(2, "m4", b"\n\x00\x00\x01", 7946, b"", VSN), 1001.0)
    assert e.member("m4") is not None and e.num_nodes == 6
    assert_table_consistent(e)
    members.order.restart()
    assert sorted(m.name for m in iter(members.order.next, None)) == [f"m{i}" for i in range(6)]
