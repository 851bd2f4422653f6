"""The simulated network: latency distributions, link rules, partitions, reachability."""

from __future__ import annotations

import random
import statistics

import pytest

from swimpy.sim.network import Network, Partition, make_sampler
from swimpy.sim.scenario import LatencySpec, LinkSpec


def _net(n: int = 6, **kw: object) -> Network:
    default = LinkSpec(latency=LatencySpec("fixed", 0.001), loss=0.0, duplicate=0.0,
                       reorder=0.0, reorder_delay=0.005)
    return Network(n, default, random.Random(1))


@pytest.mark.parametrize(
    ("spec", "mean"),
    [
        (LatencySpec("fixed", 0.002), 0.002),
        (LatencySpec("uniform", 0.001, 0.003), 0.002),
        (LatencySpec("normal", 0.030, 0.003), 0.030),
        (LatencySpec("exponential", 0.001, 0.004), 0.005),
    ],
)
def test_latency_samples_have_the_configured_mean(spec: LatencySpec, mean: float) -> None:
    draw = make_sampler(spec, random.Random(7))
    xs = [draw() for _ in range(20000)]
    assert min(xs) >= 0
    assert statistics.mean(xs) == pytest.approx(mean, rel=0.03)


def test_lognormal_latency_has_the_configured_median() -> None:
    draw = make_sampler(LatencySpec("lognormal", 0.0004, 0.5), random.Random(3))
    assert statistics.median(draw() for _ in range(20000)) == pytest.approx(0.0004, rel=0.03)


def test_samples_depend_only_on_the_seed() -> None:
    spec = LatencySpec("uniform", 0.0, 1.0)
    a = make_sampler(spec, random.Random(5))
    b = make_sampler(spec, random.Random(5))
    assert [a() for _ in range(10)] == [b() for _ in range(10)]


def test_symmetric_partition_blocks_both_directions_only_across_the_cut() -> None:
    net = _net()
    net.partition(Partition("p", frozenset({0, 1, 2}), frozenset({3, 4, 5}), True))
    assert net.blocked(0, 3) and net.blocked(3, 0)
    assert not net.blocked(0, 1) and not net.blocked(4, 5)
    assert not net.reachable(1, 4) and net.reachable(1, 2)
    assert net.any_blocking()
    assert net.heal("p") == ["p"]
    assert net.reachable(1, 4) and not net.any_blocking()


def test_asymmetric_partition_blocks_one_direction_and_breaks_reachability() -> None:
    net = _net()
    net.partition(Partition("p", frozenset({0}), frozenset({1}), False))
    assert net.blocked(0, 1) and not net.blocked(1, 0)
    assert not net.reachable(0, 1) and not net.reachable(1, 0)


def test_later_link_rules_override_earlier_ones_and_can_be_removed() -> None:
    net = _net()
    slow = LinkSpec(latency=LatencySpec("fixed", 0.05), loss=0.1)
    lossy = LinkSpec(loss=0.5, symmetric=False)
    net.add_rule(0, slow, {0, 1}, {2, 3})
    net.add_rule(1, lossy, {0}, {2})
    assert net.link(0, 2).loss == 0.5 and net.link(0, 2).latency() == 0.05
    assert net.link(2, 0).loss == 0.1  # the second rule is one-way
    assert net.link(1, 3).latency() == 0.05 and net.link(3, 1).latency() == 0.05
    assert net.link(4, 5).latency() == 0.001
    net.remove_rule(0)
    assert net.link(1, 3).latency() == 0.001 and net.link(0, 2).latency() == 0.001


def test_total_loss_counts_as_unreachable() -> None:
    net = _net()
    net.add_rule(0, LinkSpec(loss=1.0), {0}, {1})
    assert not net.reachable(0, 1) and net.reachable(0, 2)
