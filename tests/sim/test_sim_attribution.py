"""Which suspicions and deaths a partition caused (issue 11, simulator defect 1).

A suspicion or death of a running member is partition-caused when the evidence behind it
crossed a cut: the missed probe (sent while the link was down, even if it gave up after the
heal), the refutation that a cut kept from the suspecting member, or the verdict of the
member it was learnt from. Until this was fixed a verdict counted as partition-caused only
when the two members could not reach each other at that very moment (or when some member
that could not had reached the same verdict on the same incarnation first). The tests
replay that old rule beside the run (:class:`OldRule`), to show that each case still
exercises the difference, and check the new counts.
"""

from __future__ import annotations

import random
from typing import Any

from swimpy.core.member import EventKind, State
from swimpy.sim import Simulation, load_scenario, parse_scenario
from swimpy.sim.network import Network, Partition
from swimpy.sim.scenario import LatencySpec, LinkSpec


class OldRule:
    """The attribution before the fix, counted beside the metrics of ``sim``: a verdict is
    partition-caused iff the pair cannot reach each other now, or (subject, incarnation)
    was first judged by an observer that could not."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.false_suspicions = 0
        self.false_deaths = 0
        self.partition_suspicions = 0
        self.partition_deaths = 0
        self.verdicts: list[tuple[float, int, int, str, bool]] = []
        self._cut: set[tuple[int, int]] = set()
        self._inner = sim.metrics.member_event
        sim.metrics.member_event = self._hook  # type: ignore[method-assign, assignment]

    def _hook(self, t: float, o: int, s: int, kind: EventKind, inc: int, *rest: Any) -> None:
        sim = self.sim
        if (
            sim.running[o]
            and sim.running[s]
            and not sim.metrics.bulk
            and kind in (EventKind.SUSPECT, EventKind.DEAD)
        ):
            if not sim.net.reachable(o, s):
                self._cut.add((s, inc))
                cut = True
            else:
                cut = (s, inc) in self._cut
            suspect = kind is EventKind.SUSPECT
            if suspect and cut:
                self.partition_suspicions += 1
            elif suspect:
                self.false_suspicions += 1
            elif cut:
                self.partition_deaths += 1
            else:
                self.false_deaths += 1
            self.verdicts.append((t, o, s, "S" if suspect else "D", cut))
        self._inner(t, o, s, kind, inc, *rest)


def _counts(r: dict[str, Any]) -> tuple[int, int, int, int]:
    return (r["false_suspicions"], r["false_deaths"], r["partition_suspicions"],
            r["partition_deaths"])


# ------------------------------------------------------------------ the network's record


def _net(n: int = 6) -> tuple[Network, list[float]]:
    clock = [0.0]
    default = LinkSpec(latency=LatencySpec("fixed", 0.001), loss=0.0, duplicate=0.0,
                       reorder=0.0, reorder_delay=0.005)
    return Network(n, default, random.Random(1), clock=lambda: clock[0]), clock


def test_network_remembers_when_each_pair_was_cut() -> None:
    net, clock = _net()
    assert not net.cut_between(0, 3, 0.0, 100.0) and net.cut_spans == []
    clock[0] = 10.0
    net.partition(Partition("p", frozenset({0, 1, 2}), frozenset({3, 4, 5}), True))
    clock[0] = 13.0
    net.heal("p")
    clock[0] = 20.0
    net.partition(Partition("q", frozenset({4}), frozenset({5}), False))  # one way
    clock[0] = 25.0
    net.heal("q")
    # across the first cut, in windows that touch [10, 13] (both ends included)
    assert net.cut_between(0, 3, 9.0, 10.0) and net.cut_between(3, 0, 13.0, 14.0)
    assert net.cut_between(1, 5, 11.0, 12.0) and net.cut_between(2, 4, 0.0, 100.0)
    assert not net.cut_between(0, 3, 13.5, 19.0) and not net.cut_between(0, 3, 0.0, 9.9)
    # within a side, never
    assert not net.cut_between(0, 1, 0.0, 100.0) and not net.cut_between(4, 5, 0.0, 15.0)
    # a one-way cut cuts the pair both ways (a probe needs a round trip)
    assert net.cut_between(5, 4, 24.0, 30.0) and net.cut_between(4, 5, 20.0, 20.0)
    assert not net.cut_between(4, 5, 25.1, 30.0)
    assert [(s.start, s.end) for s in net.cut_spans] == [(10.0, 13.0), (20.0, 25.0)]


def test_a_totally_lossy_link_rule_counts_as_a_cut_and_a_lossy_one_does_not() -> None:
    net, clock = _net()
    clock[0] = 5.0
    net.add_rule(0, LinkSpec(loss=0.5), {0}, {1})
    net.add_rule(1, LinkSpec(loss=1.0), {2}, {3})
    clock[0] = 8.0
    net.remove_rule(1)
    assert not net.cut_between(0, 1, 0.0, 10.0)
    assert net.cut_between(2, 3, 7.0, 9.0) and not net.cut_between(2, 3, 8.5, 9.0)


def test_simulation_dates_the_cuts_in_virtual_time() -> None:
    sim = Simulation(load_scenario("flapping-link").with_overrides(duration=45.0), 1)
    sim.run()
    spans = [(s.start, s.end) for s in sim.net.cut_spans]
    assert spans == [(20.0, 23.0), (30.0, 33.0), (40.0, 43.0)]
    rack = sim.group("rack")
    assert sim.net.cut_between(0, rack[0], 22.5, 24.0)
    assert not sim.net.cut_between(0, rack[0], 23.5, 29.5)
    assert not sim.net.cut_between(rack[0], rack[-1], 0.0, 45.0)


# ------------------------------------------------------------------ the two mechanisms

TWO = 'nodes = 2\nprofile = "lan"\nduration = "60s"\n'


def test_a_probe_sent_during_a_cut_that_gives_up_after_the_heal_is_partition_caused() -> None:
    # Two members probe each other about once a second (health 0: a probe lasts 1 s; with
    # two members the round-robin skips a tick now and then). A probe sent during the cut
    # [10 s, 11 s) gives up after the heal, when the pair can reach each other again: every
    # verdict of these runs is one of those. (No TCP fallback: it would be dialled 0.5 s
    # into the probe, after the heal for half of the probes, and rescue them.)
    total = 0
    for seed in (1, 2, 3, 4):
        sim = Simulation(parse_scenario(TWO + "[config]\ndisable_tcp_pings = true\n"), seed)
        old = OldRule(sim)
        sim.run_until(10.0)
        sim.partition([0], [1])
        sim.run_until(11.0)
        sim.heal()
        sim.run_until(20.0)
        n = len(old.verdicts)
        total += n
        assert all(11.0 <= t < 12.0 and kind == "S" for t, _, _, kind, _ in old.verdicts)
        assert (old.false_suspicions, old.partition_suspicions) == (n, 0), seed
        m = sim.metrics
        assert (m.false_suspicions, m.partition_suspicions) == (0, n), seed
        assert m.false_deaths == m.partition_deaths == 0
    assert total >= 2


def test_a_death_whose_refutation_a_cut_held_back_is_partition_caused() -> None:
    # Member 0 falsely suspects member 1 (starved: its acks come 5 s late). A cut between
    # them then keeps 1's refutation from 0 and heals 0.2 s before 0's suspicion times out
    # (4 s with two members, no confirmations to wait for); once 1 has refuted, the stale
    # suspicion that 0's next probes carry no longer makes it refute again, and an ack
    # clears no suspicion. So 0 declares 1 dead while they can reach each other.
    for seed in (1, 2, 3):
        sim = Simulation(parse_scenario(TWO), seed)
        old = OldRule(sim)
        sim.run_until(10.0)
        sim.starve(1, 5.0)
        node = sim.nodes[0]
        assert node is not None
        name = sim.names[1]
        t = 10.0
        while (m := node.member(name)) is not None and m.state is not State.SUSPECT:
            t += 0.001
            sim.run_until(t)
            assert t < 15.0
        sim.starve(1, 0.0)
        sim.partition([0], [1])
        sim.run_until(t + 3.8)
        sim.heal()
        sim.run_until(t + 6.0)
        deaths = [(o, s, cut) for when, o, s, kind, cut in old.verdicts if kind == "D"]
        assert (0, 1, False) in deaths, seed  # 0's verdict on 1, at a reachable moment
        assert old.false_deaths == 1, seed
        assert sim.metrics.false_deaths == 0, seed
        assert sim.metrics.partition_deaths == old.partition_deaths + 1
        assert sim.metrics.false_suspicions >= 1  # the starved member's, still false


# ------------------------------------------------------------------ the known cases


def test_flapping_link_suspicions_raised_across_the_cut_are_not_false() -> None:
    # Seed 1 over the whole scenario: 830 "false" suspicions before the fix, all raised by
    # probes sent while the rack's link was down whose deadline fell after it came back
    # (the pair was reachable at the verdict's moment), and the gossip of those suspicions
    # to the reachable majority. The first three flaps show the same in a fifth of the time.
    sim = Simulation(load_scenario("flapping-link").with_overrides(duration=45.0), 1)
    old = OldRule(sim)
    r = sim.run()
    assert old.false_suspicions > 50, "the case no longer reproduces the old misattribution"
    assert r["false_suspicions"] == 0 and r["false_deaths"] == 0
    assert r["partition_suspicions"] == old.partition_suspicions + old.false_suspicions
    # the verdicts the old rule called false came right after a heal (at 23 s, 33 s, 43 s)
    late = [t for t, _, _, _, cut in old.verdicts if not cut]
    assert all(any(0 <= t - heal < 8 for heal in (23.0, 33.0, 43.0)) for t in late)


def test_partition_minority_aftermath_deaths_are_not_false() -> None:
    # Seed 86: a rack member's probe of a majority member, sent before the heal at 70 s,
    # fails after it (2.5 s later; the prober's health score had stretched the probe). The
    # majority refutes at once, but two rack members that the majority still holds dead
    # never hear the refutation and declare the majority member dead at 89.6 s: 2 "false"
    # deaths and 83 "false" suspicions before the fix, with the engine of this writing. The
    # seed depends on the traces; the two tests above hold the mechanisms whatever they are.
    sim = Simulation(load_scenario("partition-minority").with_overrides(duration=95.0), 86)
    old = OldRule(sim)
    r = sim.run()
    assert r["false_deaths"] == 0 and r["false_suspicions"] == 0
    assert r["partition_deaths"] == old.partition_deaths + old.false_deaths
    assert r["partition_suspicions"] == old.partition_suspicions + old.false_suspicions


# ------------------------------------------------------------------ controls


STARVED = """
nodes = 20
profile = "lan"
duration = "35s"
[config]
awareness_max_multiplier = 1
suspicion_max_timeout_mult = 1
[groups]
slow = { count = 2 }
rack = [0.0, 0.15]
[[events]]
at = "3s"
action = "starve"
group = "slow"
delay = "1.5s"
"""


def test_false_suspicions_without_a_partition_are_unchanged() -> None:
    # Starved members without Lifeguard: false suspicions and deaths of healthy members,
    # no partition. Nothing was cut, so nothing is the partition's doing.
    sim = Simulation(parse_scenario(STARVED), 1)
    old = OldRule(sim)
    r = sim.run()
    assert r["false_suspicions"] > 50
    assert r["partition_suspicions"] == 0 and r["partition_deaths"] == 0
    assert _counts(r) == (old.false_suspicions, old.false_deaths, 0, 0)


def test_false_suspicions_beside_a_partition_stay_false() -> None:
    # The same starved members, and a rack (not starved) cut off from 10 s to 30 s. While
    # the cut lasts, a verdict between members of the same side has nothing to do with it:
    # no message crosses the cut, so none of them is an echo of a verdict that did. The old
    # rule let a rack member's suspicion of a starved member across the cut taint the same
    # (member, incarnation) for the whole cluster, and counted the majority's own false
    # suspicions of it as partition-caused.
    text = STARVED + '[[events]]\nat = "10s"\naction = "partition"\nbetween = ["rack"]\n' \
        'until = "30s"\n'
    sim = Simulation(parse_scenario(text), 1)
    rack = set(sim.group("rack"))
    seen: list[tuple[float, int, int, bool]] = []
    inner = sim.metrics.member_event

    def hook(t: float, o: int, s: int, kind: EventKind, inc: int, *rest: Any) -> None:
        m = sim.metrics
        before = m.partition_suspicions + m.partition_deaths, m.false_suspicions + m.false_deaths
        inner(t, o, s, kind, inc, *rest)
        after = m.partition_suspicions + m.partition_deaths, m.false_suspicions + m.false_deaths
        if after != before:
            seen.append((t, o, s, after[0] != before[0]))

    sim.metrics.member_event = hook  # type: ignore[method-assign, assignment]
    old = OldRule(sim)
    sim.run()
    during = [(o, s, cut) for t, o, s, cut in seen if 10.0 <= t < 30.0]
    same_side = [cut for o, s, cut in during if (o in rack) == (s in rack)]
    assert len(same_side) > 50 and not any(same_side)
    old_same_side = [cut for t, o, s, _, cut in old.verdicts
                     if 10.0 <= t < 30.0 and (o in rack) == (s in rack)]
    assert any(old_same_side), "the case no longer shows the old rule's leak"
    # and a probe across the cut is the partition's doing, as before
    across = [cut for o, s, cut in during if (o in rack) != (s in rack)]
    assert across and sum(across) >= len(across) - 2
