"""TCP streams over lossy links: lost segments are retransmitted after Linux's timeouts
(swimpy.sim.simulation ``_tcp_segment``), so streams across a lossy network are slower
and can miss their deadline; a lossless network draws nothing extra."""

from __future__ import annotations

import pytest

from swimpy.sim import Simulation, parse_scenario
from swimpy.sim.simulation import TCP_RTO_MIN, TCP_SYN_RTO, _data_rto

TWO = """
nodes = 2
profile = "wan"
duration = "30s"
[network]
latency = { dist = "fixed", value = "50ms" }
loss = LOSS
"""


def _sim(loss: float, seed: int = 1) -> Simulation:
    return Simulation(parse_scenario(TWO.replace("LOSS", repr(loss))), seed)


def test_data_rto_follows_linux_from_the_handshake_round_trip() -> None:
    lan = _sim(0.1).net.link(0, 1)
    assert _data_rto(lan, lan) == pytest.approx(0.1 + max(0.2, TCP_RTO_MIN))  # rtt 100 ms
    # on a fast link the floor decides: 1 ms round trip -> 201 ms
    lan.mean_latency = 0.0005
    assert _data_rto(lan, lan) == pytest.approx(0.001 + TCP_RTO_MIN)


def test_lost_segments_wait_for_retransmission_timeouts() -> None:
    sim = _sim(0.25)
    link = sim.net.link(0, 1)
    delays = [sim._tcp_segment(link, TCP_SYN_RTO) for _ in range(4000)]
    on_time = sum(1 for d in delays if d == pytest.approx(0.05))
    once = sum(1 for d in delays if d == pytest.approx(0.05 + 1.0))
    twice = sum(1 for d in delays if d == pytest.approx(0.05 + 1.0 + 2.0))
    # P(no loss) = 0.75, P(one) = 0.1875, P(two) = 0.047: binomial bounds at ~5 sigma
    assert 2880 <= on_time <= 3120
    assert 630 <= once <= 870
    assert 120 <= twice <= 260


def test_a_lossless_link_adds_no_retransmissions() -> None:
    sim = _sim(0.0)
    link = sim.net.link(0, 1)
    assert all(sim._tcp_segment(link, TCP_SYN_RTO) == pytest.approx(0.05) for _ in range(100))


def test_retransmission_stops_once_every_deadline_is_past() -> None:
    sim = _sim(0.999999)
    link = sim.net.link(0, 1)
    assert sim._tcp_segment(link, TCP_SYN_RTO) < 1000.0  # finite, and quick to draw
