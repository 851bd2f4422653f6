"""swimpy.agent.metrics: the Prometheus collector over the agent's pools, and RttHistogram.

Statistics are built by hand (and once from a small in-memory cluster); the exposition is
read back with prometheus_client's own parser."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence

import prometheus_client.exposition
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from prometheus_client.samples import Sample

from swimpy.agent.metrics import (
    CONTENT_TYPE,
    DEFAULT_RTT_BUCKETS,
    MESSAGE_TYPES,
    PoolMetricsSource,
    RttHistogram,
    SwimpyCollector,
    render,
)
from swimpy.core import JoinRequested, PingCompleted
from swimpy.core.snapshot import Statistics
from swimpy.testing import VirtualCluster

Buckets = Sequence[tuple[float, int]]


def stats(counters: Mapping[str, int] | None = None, **gauges: int) -> Statistics:
    base = {"members": 0, "alive": 0, "suspect": 0, "dead": 0, "left": 0, "queue_depth": 0,
            "health_score": 0, "incarnation": 0}
    base.update(gauges)
    return Statistics(counters=dict(counters or {}), **base)


class Source:
    """A PoolMetricsSource whose answers a test sets."""

    def __init__(self, st: Statistics, rtt: tuple[Buckets, float, int] | None = None) -> None:
        self.st = st
        self.rtt: tuple[Buckets, float, int] = rtt or (((math.inf, 0),), 0.0, 0)

    def statistics(self) -> Statistics:
        return self.st

    def rtt_histogram(self) -> tuple[Buckets, float, int]:
        return self.rtt


def scrape(pools: Mapping[str, PoolMetricsSource]) -> list[Sample]:
    return samples(SwimpyCollector(lambda: pools))


def samples(collector: SwimpyCollector) -> list[Sample]:
    body, ctype = render(collector)
    assert ctype == CONTENT_TYPE
    return [s for fam in text_string_to_metric_families(body.decode()) for s in fam.samples]


def value(out: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in out if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def names(out: list[Sample]) -> set[str]:
    return {s.name for s in out}


LAN = stats(
    {
        "probes": 10, "probes_failed": 2, "indirect_probes": 4, "tcp_fallback_probes": 3,
        "tcp_fallback_successes": 1, "acks": 9, "nacks": 1,
        "packets_sent": 40, "packets_received": 38, "gossip_packets": 12, "push_pulls": 3,
        "streams_opened": 5, "streams_received": 2, "bytes_sent": 4000,
        "bytes_received": 3800, "suspicions": 2, "suspicion_confirmations": 1,
        "refutations": 1, "user_messages_received": 6,
        "dropped_bad_crc": 3, "dropped_malformed": 1, "dropped_truncated_parts": 0,
        "udp_send_errors": 1, "events_dropped": 4, "stream_errors_push_pull": 2,
    },
    members=6, alive=3, suspect=1, dead=1, left=1, queue_depth=7, health_score=2,
    incarnation=5,
)


def test_named_families_have_the_expected_samples_and_labels() -> None:
    out = scrape({"lan": Source(LAN)})
    for status, n in {"alive": 3, "suspect": 1, "dead": 1, "left": 1}.items():
        assert value(out, "swimpy_members", pool="lan", status=status) == n
    assert sum(s.value for s in out if s.name == "swimpy_members") == LAN.members
    assert value(out, "swimpy_health_score", pool="lan") == 2
    assert value(out, "swimpy_incarnation", pool="lan") == 5
    assert value(out, "swimpy_broadcast_queue_depth", pool="lan") == 7
    # one probe may be in flight: ok lags it (see the module docstring)
    assert value(out, "swimpy_probes_total", pool="lan", result="ok") == 10 - 2 - 1
    assert value(out, "swimpy_probes_total", pool="lan", result="failed") == 2
    assert {s.labels["result"] for s in out if s.name == "swimpy_probes_total"} == {
        "ok", "failed"}
    assert value(out, "swimpy_dropped_packets_total", pool="lan", reason="bad_crc") == 3
    assert value(out, "swimpy_dropped_packets_total", pool="lan", reason="malformed") == 1
    assert value(out, "swimpy_dropped_packets_total", pool="lan",
                 reason="truncated_parts") == 0
    sent = {"packet": 40, "gossip": 12, "push_pull": 3, "stream": 5}
    assert set(sent) == set(MESSAGE_TYPES)
    for kind, n in sent.items():
        assert value(out, "swimpy_messages_sent_total", pool="lan", type=kind) == n
    assert value(out, "swimpy_bytes_sent_total", pool="lan") == 4000
    assert value(out, "swimpy_bytes_received_total", pool="lan") == 3800
    assert value(out, "swimpy_suspicions_total", pool="lan") == 2
    assert value(out, "swimpy_refutations_total", pool="lan") == 1


def test_remaining_counters_are_generic_families_and_none_twice() -> None:
    out = scrape({"lan": Source(LAN)})
    generic = ("indirect_probes", "tcp_fallback_probes", "tcp_fallback_successes", "acks",
               "nacks", "packets_received", "streams_received", "suspicion_confirmations",
               "user_messages_received", "udp_send_errors", "events_dropped",
               "stream_errors_push_pull")
    for key in generic:
        assert value(out, f"swimpy_{key}_total", pool="lan") == LAN.counters[key]
    # counters a named family exports (probes, packets_sent, dropped_*, ...) are not
    # exported again, and gauges are not counters: exactly these names
    assert names(out) == {
        "swimpy_members", "swimpy_health_score", "swimpy_incarnation",
        "swimpy_broadcast_queue_depth", "swimpy_probes_total",
        "swimpy_dropped_packets_total", "swimpy_messages_sent_total",
        "swimpy_bytes_sent_total", "swimpy_bytes_received_total", "swimpy_suspicions_total",
        "swimpy_refutations_total", "swimpy_probe_rtt_seconds_bucket",
        "swimpy_probe_rtt_seconds_sum", "swimpy_probe_rtt_seconds_count",
        *(f"swimpy_{key}_total" for key in generic),
    }


def test_text_has_help_and_type_for_every_family() -> None:
    body, _ = render(SwimpyCollector(lambda: {"lan": Source(LAN)}))
    text = body.decode()
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["swimpy_members"] == "gauge"
    assert types["swimpy_health_score"] == "gauge"
    assert types["swimpy_incarnation"] == "gauge"
    assert types["swimpy_broadcast_queue_depth"] == "gauge"
    for counter in ("swimpy_probes", "swimpy_dropped_packets", "swimpy_messages_sent",
                    "swimpy_bytes_sent", "swimpy_bytes_received", "swimpy_suspicions",
                    "swimpy_refutations", "swimpy_acks"):
        assert types[counter] == "counter"
        assert f"# TYPE {counter}_total counter\n" in text
    assert types["swimpy_probe_rtt_seconds"] == "histogram"
    assert "# HELP swimpy_members " in text


def test_every_pool_is_labelled_in_one_family() -> None:
    wan = stats({"probes": 1, "dropped_cidr": 5, "acks": 1}, members=2, alive=2,
                incarnation=9)
    body, _ = render(SwimpyCollector(lambda: {"wan": Source(wan), "lan": Source(LAN)}))
    fams = list(text_string_to_metric_families(body.decode()))
    assert len({f.name for f in fams}) == len(fams)  # one family per name, both pools in it
    out = [s for f in fams for s in f.samples]
    assert value(out, "swimpy_incarnation", pool="wan") == 9
    assert value(out, "swimpy_incarnation", pool="lan") == 5
    assert value(out, "swimpy_dropped_packets_total", pool="wan", reason="cidr") == 5
    assert value(out, "swimpy_probes_total", pool="wan", result="ok") == 0
    assert value(out, "swimpy_acks_total", pool="wan") == 1
    assert value(out, "swimpy_acks_total", pool="lan") == 9
    # a counter only one pool has: a sample for that pool only
    assert [s.labels for s in out if s.name == "swimpy_udp_send_errors_total"] == [
        {"pool": "lan"}]


def test_unknown_counters_appear_sanitized_and_never_clash() -> None:
    out = scrape({"lan": Source(stats({
        "weird-Name.x": 1,
        "a_b": 2, "a-b": 3,           # both sanitize to a_b: the clean one keeps it
        "retries_total": 4,           # no doubled _total
        "members": 5,                 # would be swimpy_members_total, beside the gauge
        "probe_rtt_seconds": 6,       # would clash with the histogram's family
        "health score": 7,            # would be the gauge's name
        "!!!": 8,
    }))})
    assert value(out, "swimpy_weird_name_x_total", pool="lan") == 1
    assert value(out, "swimpy_a_b_total", pool="lan") == 2
    assert value(out, "swimpy_counter_a_b_total", pool="lan") == 3
    assert value(out, "swimpy_retries_total", pool="lan") == 4
    assert value(out, "swimpy_counter_members_total", pool="lan") == 5
    assert value(out, "swimpy_counter_probe_rtt_seconds_total", pool="lan") == 6
    assert value(out, "swimpy_counter_health_score_total", pool="lan") == 7
    assert value(out, "swimpy_unnamed_total", pool="lan") == 8
    assert value(out, "swimpy_members", pool="lan", status="alive") == 0


def test_empty_statistics_and_no_pools_do_not_crash() -> None:
    out = scrape({"lan": Source(stats())})
    assert value(out, "swimpy_members", pool="lan", status="alive") == 0
    assert value(out, "swimpy_probes_total", pool="lan", result="ok") == 0
    assert value(out, "swimpy_probes_total", pool="lan", result="failed") == 0
    assert value(out, "swimpy_messages_sent_total", pool="lan", type="gossip") == 0
    assert value(out, "swimpy_bytes_received_total", pool="lan") == 0
    assert value(out, "swimpy_probe_rtt_seconds_count", pool="lan") == 0
    assert value(out, "swimpy_probe_rtt_seconds_bucket", pool="lan", le="+Inf") == 0
    assert not [s for s in out if s.name == "swimpy_dropped_packets_total"]

    body, _ = render(SwimpyCollector(dict))
    fams = list(text_string_to_metric_families(body.decode()))
    assert "swimpy_members" in {f.name for f in fams}
    assert all(not f.samples for f in fams)


def test_rtt_histogram_buckets_are_cumulative_with_le_semantics() -> None:
    h = RttHistogram()
    assert h.bounds == (*DEFAULT_RTT_BUCKETS, math.inf)
    for s in (0.0, 0.0004, 0.001, 0.0011, 0.003, 0.2, 0.2, 2.5, 30.0):
        h.observe(s)
    for bad in (math.nan, math.inf, -0.5):  # no round-trip times: ignored
        h.observe(bad)
    buckets, total, count = h.snapshot()
    got = dict(buckets)
    assert count == 9
    assert total == pytest.approx(0.0004 + 0.001 + 0.0011 + 0.003 + 0.4 + 2.5 + 30.0)
    assert got[0.001] == 3        # 0.0, 0.0004 and exactly 0.001 (le: <=)
    assert got[0.0025] == 4
    assert got[0.005] == 5
    assert got[0.25] == 7
    assert got[2.5] == 8
    assert got[math.inf] == 9 == count
    counts = [n for _, n in buckets]
    assert counts == sorted(counts)
    assert [b for b, _ in buckets] == list(h.bounds)


def test_rtt_histogram_in_the_exposition() -> None:
    h = RttHistogram()
    for s in (0.002, 0.002, 0.04, 3.0):
        h.observe(s)

    class Pool(Source):
        def rtt_histogram(self) -> tuple[Buckets, float, int]:
            return h.snapshot()

    out = scrape({"lan": Pool(stats())})
    buckets = [(s.labels["le"], s.value) for s in out
               if s.name == "swimpy_probe_rtt_seconds_bucket"]
    assert [le for le, _ in buckets] == [*(str(b) for b in DEFAULT_RTT_BUCKETS), "+Inf"]
    counts = [n for _, n in buckets]
    assert counts == sorted(counts)  # cumulative
    assert dict(buckets)["0.001"] == 0
    assert dict(buckets)["0.0025"] == 2
    assert dict(buckets)["0.05"] == 3
    assert dict(buckets)["2.5"] == 3
    assert dict(buckets)["+Inf"] == 4
    assert value(out, "swimpy_probe_rtt_seconds_count", pool="lan") == 4
    assert value(out, "swimpy_probe_rtt_seconds_sum", pool="lan") == pytest.approx(3.044)


def test_a_source_histogram_without_inf_gets_one_from_its_count() -> None:
    src = Source(stats(), rtt=(((0.5, 2), (0.1, 1)), 0.9, 3))
    out = scrape({"lan": src})
    assert [(s.labels["le"], s.value) for s in out
            if s.name == "swimpy_probe_rtt_seconds_bucket"] == [
        ("0.1", 1), ("0.5", 2), ("+Inf", 3)]
    assert value(out, "swimpy_probe_rtt_seconds_count", pool="lan") == 3


def test_rtt_histogram_rejects_bad_bounds_and_takes_custom_ones() -> None:
    with pytest.raises(ValueError):
        RttHistogram((0.1, 0.1))
    with pytest.raises(ValueError):
        RttHistogram((0.5, 0.1))
    with pytest.raises(ValueError):
        RttHistogram((math.nan,))
    h = RttHistogram((0.1, 1.0, math.inf))  # a trailing +Inf is accepted
    h.observe(0.5)
    assert h.snapshot() == (((0.1, 0), (1.0, 1), (math.inf, 1)), 0.5, 1)
    assert RttHistogram(()).snapshot() == (((math.inf, 0),), 0.0, 0)


def test_rtt_histogram_snapshots_are_consistent_while_another_thread_writes() -> None:
    h = RttHistogram()
    n = 20_000
    done = threading.Event()

    def writer() -> None:
        for i in range(n):
            h.observe((i % 13) * 0.01)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    try:
        while not done.is_set():
            buckets, total, count = h.snapshot()
            counts = [c for _, c in buckets]
            assert counts == sorted(counts)
            assert counts[-1] == count
            assert total >= 0
    finally:
        t.join()
    assert h.snapshot()[2] == n


def test_probes_ok_never_goes_down_between_scrapes() -> None:
    src = Source(stats({"probes": 5, "probes_failed": 0}))
    c = SwimpyCollector(lambda: {"lan": src})

    def ok_failed() -> tuple[float, float]:
        out = samples(c)
        return (value(out, "swimpy_probes_total", pool="lan", result="ok"),
                value(out, "swimpy_probes_total", pool="lan", result="failed"))

    history = []
    # probe 5 in flight, then it fails; 6 starts and succeeds; 7 starts
    for probes, failed in ((5, 0), (5, 1), (6, 1), (6, 1), (7, 1), (7, 2), (9, 2)):
        src.st = stats({"probes": probes, "probes_failed": failed})
        ok, f = ok_failed()
        assert f == failed
        assert ok + f <= probes
        history.append(ok)
    assert history == sorted(history)
    assert history == [4, 4, 4, 4, 5, 5, 6]
    # a new node under the same pool name: its counters start over, so does ok
    src.st = stats({"probes": 2, "probes_failed": 0})
    assert ok_failed() == (1, 0)


def test_a_pool_that_goes_away_is_forgotten() -> None:
    pools: dict[str, PoolMetricsSource] = {
        "lan": Source(stats({"probes": 9, "probes_failed": 0}))}
    c = SwimpyCollector(lambda: pools)
    assert value(samples(c), "swimpy_probes_total", pool="lan", result="ok") == 8
    del pools["lan"]
    assert not [s for s in samples(c) if s.labels.get("pool") == "lan"]
    pools["lan"] = Source(stats({"probes": 9, "probes_failed": 3}))
    assert value(samples(c), "swimpy_probes_total", pool="lan", result="ok") == 5


def test_registering_describes_without_scraping_the_pools() -> None:
    def pools() -> Mapping[str, PoolMetricsSource]:
        raise AssertionError("scraped at registration")

    registry = CollectorRegistry(auto_describe=True)
    registry.register(SwimpyCollector(pools))
    with pytest.raises(ValueError):  # the named families clash
        registry.register(SwimpyCollector(pools))


def test_content_type_is_what_generate_latest_writes() -> None:
    plain = getattr(prometheus_client.exposition, "CONTENT_TYPE_PLAIN_0_0_4", CONTENT_TYPE)
    assert plain == CONTENT_TYPE


def test_every_counter_of_a_real_cluster_is_exported() -> None:
    h = VirtualCluster(encode=True)
    for n in "abc":
        h.add(n)
    for n in "bc":
        h.do(n, JoinRequested((h.addr("a"),)))
    h.run_until(5.0)
    h.crash("c")
    h.run_until(30.0)
    rtt = RttHistogram()
    for _, name, act in h.actions:
        if name == "a" and isinstance(act, PingCompleted):
            rtt.observe(act.rtt)

    class Engine(Source):
        def rtt_histogram(self) -> tuple[Buckets, float, int]:
            return rtt.snapshot()

    st = h.nodes["a"].statistics()
    assert st.counters["probes_failed"] > 0 and st.counters["probes"] > 0
    out = scrape({"lan": Engine(st)})
    exported = names(out)
    for key, total in st.counters.items():
        if key.startswith("dropped_"):
            assert value(out, "swimpy_dropped_packets_total", pool="lan",
                         reason=key.removeprefix("dropped_")) == total
        elif key in ("probes", "probes_failed"):
            continue
        elif key in MESSAGE_TYPES.values():
            kind = next(k for k, v in MESSAGE_TYPES.items() if v == key)
            assert value(out, "swimpy_messages_sent_total", pool="lan", type=kind) == total
        elif key in ("bytes_sent", "bytes_received", "suspicions", "refutations"):
            assert value(out, f"swimpy_{key}_total", pool="lan") == total
        else:
            assert f"swimpy_{key}_total" in exported, key
            assert value(out, f"swimpy_{key}_total", pool="lan") == total
    assert value(out, "swimpy_probes_total", pool="lan",
                 result="failed") == st.counters["probes_failed"]
    assert value(out, "swimpy_members", pool="lan", status="dead") + value(
        out, "swimpy_members", pool="lan", status="suspect") == 1
    assert value(out, "swimpy_probe_rtt_seconds_count", pool="lan") == rtt.snapshot()[2] > 0
