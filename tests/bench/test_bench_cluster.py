"""The pure parts of ``benchmarks/bench_cluster.py``: statistics, event-line parsing,
nftables counter parsing, packet tallies, detection and false-suspicion bookkeeping; and
one tiny real run (3 swimpy agents, 1 kill) when the tools are there."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
if str(_BENCH) not in sys.path:
    sys.path.insert(0, str(_BENCH))

from cluster import events as ev  # noqa: E402
from cluster import nftcount, stats  # noqa: E402
from cluster.predict import MODELS, kill_time, predict, scenario_text  # noqa: E402
from cluster.run import detection, false_suspicions, join_curve  # noqa: E402
from cluster.sniff import UdpTally, parse_frame, tally_datagram, tally_streams  # noqa: E402

from swimpy import sim  # noqa: E402
from swimpy.wire import Ack, Ping, encode_message  # noqa: E402
from swimpy.wire.packet import WireOptions, encode_packet  # noqa: E402

# --- statistics -------------------------------------------------------------------------


def test_percentile_interpolates_like_numpy() -> None:
    xs = [1.0, 2.0, 3.0, 4.0]
    assert stats.percentile(xs, 0) == 1.0
    assert stats.percentile(xs, 100) == 4.0
    assert stats.percentile(xs, 50) == 2.5
    assert stats.percentile(xs, 90) == pytest.approx(3.7)
    assert stats.percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError):
        stats.percentile([], 50)


def test_summarize_reports_tails_only_with_enough_samples() -> None:
    nine = stats.summarize([float(i) for i in range(9)])
    assert nine["n"] == 9 and nine["median"] == 4.0
    assert "p90" not in nine and "p99" not in nine
    fifty = stats.summarize([float(i) for i in range(50)])
    assert fifty["p90"] == pytest.approx(44.1) and "p99" not in fifty
    big = stats.summarize([float(i) for i in range(200)])
    assert big["p99"] == pytest.approx(197.01)
    assert stats.summarize([]) == {"n": 0}


def test_bootstrap_is_seeded_and_brackets_the_difference() -> None:
    a = [6.0 + 0.1 * i for i in range(20)]
    b = [5.0 + 0.1 * i for i in range(20)]
    r1 = stats.bootstrap_median_diff(a, b, resamples=2000, seed=3)
    r2 = stats.bootstrap_median_diff(a, b, resamples=2000, seed=3)
    assert r1 == r2
    assert r1["diff"] == pytest.approx(1.0)
    assert r1["low"] <= 1.0 <= r1["high"]
    assert r1["low"] > 0  # a clear 1 s shift: the interval excludes 0
    same = stats.bootstrap_median_diff(a, a, resamples=2000, seed=3)
    assert same["low"] <= 0 <= same["high"]


def test_relative_error() -> None:
    assert stats.relative_error(5.5, 5.0) == pytest.approx(0.1)
    assert stats.relative_error(4.5, 5.0) == pytest.approx(-0.1)
    with pytest.raises(ValueError):
        stats.relative_error(1.0, 0.0)


# --- event lines ------------------------------------------------------------------------


def test_parse_swimpy_agent_lines() -> None:
    line = ("2026-11-28 11:28:46,044 [WARNING] swimpy.agent: lan: member suspected: c "
            "127.0.0.1:17103 (incarnation 1)")
    assert ev.parse_swimpy(line, 1.5, "a") == ev.Event(1.5, "a", ev.SUSPECT, "c")
    failed = line.replace("member suspected", "member failed")
    assert ev.parse_swimpy(failed, 2.0, "a") == ev.Event(2.0, "a", ev.DEAD, "c")
    joined = line.replace("[WARNING]", "[INFO]").replace("member suspected", "member joined")
    assert ev.parse_swimpy(joined, 3.0, "a").kind == ev.JOINED  # type: ignore[union-attr]
    refuted = line.replace("member suspected", "member refuted a suspicion (alive)")
    assert ev.parse_swimpy(refuted, 3.0, "a").kind == ev.ALIVE  # type: ignore[union-attr]
    assert ev.parse_swimpy("... swimpy.agent: agent: joined 1 nodes", 1.0, "a") is None


def test_parse_serf_lines() -> None:
    s = "    2026/11/28 13:17:11 [INFO] memberlist: Suspect c has failed, no acks received"
    assert ev.parse_serf(s, 1.0, "a") == ev.Event(1.0, "a", ev.SUSPECT, "c")
    f = "    2026/11/28 13:17:15 [INFO] serf: EventMemberFailed: c 127.0.0.1"
    assert ev.parse_serf(f, 2.0, "a") == ev.Event(2.0, "a", ev.DEAD, "c")
    j = "    2026/11/28 13:17:20 [INFO] serf: EventMemberJoin: node-7 127.0.0.1"
    assert ev.parse_serf(j, 3.0, "a") == ev.Event(3.0, "a", ev.JOINED, "node-7")
    reap = "    2026/11/28 13:17:20 [INFO] serf: EventMemberReap: c"
    assert ev.parse_serf(reap, 3.0, "a") is None
    assert ev.parse_serf("==> Serf agent running!", 3.0, "a") is None


def test_parse_kinship_driver_lines() -> None:
    e = ev.parse_kinship("KIN 21602.150184 MemberDead k-03 dead", 21602.2, "k-00")
    assert e == ev.Event(21602.2, "k-00", ev.DEAD, "k-03", own_t=21602.150184)
    assert ev.parse_kinship("KIN 1.0 MemberSuspect k-03 suspect", 1.1, "x").kind == ev.SUSPECT  # type: ignore[union-attr]
    assert ev.parse_kinship("KIN 1.0 EventsLost - -", 1.1, "x") is None
    assert ev.parse_kinship("READY 1.0 k-00 127.0.0.1:1", 1.1, "x") is None


def test_suspicion_episodes_merge_reports_about_one_member() -> None:
    evs = [ev.Event(10.0, "a", ev.SUSPECT, "c"), ev.Event(10.2, "b", ev.SUSPECT, "c"),
           ev.Event(11.0, "a", ev.SUSPECT, "d"), ev.Event(30.0, "b", ev.SUSPECT, "c"),
           ev.Event(12.0, "a", ev.DEAD, "c")]
    assert ev.suspicion_episodes(evs, gap=10.0) == [("c", 10.0), ("d", 11.0), ("c", 30.0)]


# --- detection bookkeeping --------------------------------------------------------------


def test_detection_and_false_suspicions() -> None:
    t_kill = 100.0
    evs = [ev.Event(99.0, "a", ev.SUSPECT, "c"),  # before the kill: not this detection
           ev.Event(102.0, "a", ev.SUSPECT, "c"), ev.Event(102.5, "b", ev.SUSPECT, "c"),
           ev.Event(106.0, "a", ev.DEAD, "c"), ev.Event(106.3, "b", ev.DEAD, "c"),
           ev.Event(107.0, "a", ev.DEAD, "c"),  # a second report: the first counts
           ev.Event(104.0, "a", ev.SUSPECT, "b")]  # b was running: a false suspicion
    det = detection(evs, "c", ["a", "b"], t_kill)
    assert det["first_suspect_s"] == 2.0
    assert det["first_dead_s"] == 6.0
    assert det["all_dead_s"] == pytest.approx(6.3)
    assert det["per_survivor_dead_s"] == {"a": 6.0, "b": pytest.approx(6.3)}
    missing = detection(evs[:4], "c", ["a", "b"], t_kill)
    assert missing["all_dead_s"] is None  # b never reported it
    kills = [{"victim": "c", "t_kill": t_kill, "t_back": 110.0}]
    f = false_suspicions(evs, kills)
    assert f["episodes"] == 2 and f["subjects"] == ["b", "c"]  # c at 99 s: before its kill
    assert f["dead_reports"] == 0


def test_join_curve_counts_first_joins_of_ordered_pairs() -> None:
    evs = [ev.Event(9.0, "a", ev.JOINED, "b"), ev.Event(10.5, "b", ev.JOINED, "a"),
           ev.Event(11.0, "b", ev.JOINED, "a"), ev.Event(12.0, "a", ev.JOINED, "x")]
    assert join_curve(evs, ["a", "b"], 10.0) == [(0.0, 0.5), (0.5, 1.0)]


# --- nftables ----------------------------------------------------------------------------

NFT_JSON = {"nftables": [
    {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
    {"table": {"family": "inet", "name": "swimpybench", "handle": 7}},
    {"chain": {"family": "inet", "table": "swimpybench", "name": "out", "handle": 1}},
    {"rule": {"family": "inet", "table": "swimpybench", "chain": "out", "handle": 2,
              "comment": "udp-sport-7946",
              "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}},
                                  "right": "lo"}},
                       {"match": {"op": "==", "left": {"payload": {"protocol": "udp",
                                                                   "field": "sport"}},
                                  "right": 7946}},
                       {"counter": {"packets": 10, "bytes": 1280}}]}},
    {"rule": {"family": "inet", "table": "swimpybench", "chain": "out", "handle": 3,
              "comment": "tcp-dport-7946",
              "expr": [{"counter": {"packets": 4, "bytes": 400}}]}},
]}


def test_parse_nft_counters_and_traffic() -> None:
    counts = nftcount.parse_counters(json.dumps(NFT_JSON))
    assert counts == {"udp-sport-7946": nftcount.Count(10, 1280),
                      "tcp-dport-7946": nftcount.Count(4, 400)}
    assert nftcount.payload_bytes(counts["udp-sport-7946"]) == 1280 - 28 * 10
    before = {"udp-sport-7946": nftcount.Count(2, 256)}
    t = nftcount.traffic(before, counts, [7946], 2.0)
    assert t["udp_datagrams_per_member_s"] == 4.0
    assert t["udp_payload_bytes_per_member_s"] == (1024 - 28 * 8) / 2
    assert t["tcp_bytes_per_member_s"] == 200.0
    assert t["bytes_per_member_s"] == (1024 - 28 * 8 + 400) / 2


def test_ruleset_has_three_counters_per_port() -> None:
    text = nftcount.ruleset([7946, 7947])
    assert text.count(" counter ") == 6
    assert 'udp sport 7947 counter comment "udp-sport-7947"' in text
    assert "table inet swimpybench" in text


# --- packet tallies ---------------------------------------------------------------------


def test_tally_counts_serf_coordinates_in_acks() -> None:
    t = UdpTally()
    opts = WireOptions(compression=False)
    tally_datagram(t, encode_packet(encode_message(Ack(seq_no=1, payload=b"x" * 90)), opts,
                                    crc=True))
    tally_datagram(t, encode_packet(encode_message(Ping(seq_no=2, node="b")), opts,
                                    crc=False))
    tally_datagram(t, b"\xff\x00garbage")
    assert t.datagrams == 3
    assert t.acks == 1 and t.ack_payload_bytes == 90
    assert t.messages == {"Ack": 1, "Ping": 1}
    assert t.undecoded == 1


def test_tally_streams_counts_undecodable_directions() -> None:
    out = tally_streams([b"\x00\x01not a push pull"])
    assert out["push_pulls"] == 0 and out["undecoded"] == 1
    assert out["payload_bytes"] == 17


def test_parse_frame_reads_udp_over_ipv4() -> None:
    payload = b"hello"
    udp = (1234).to_bytes(2, "big") + (7946).to_bytes(2, "big") + (8 + 5).to_bytes(2, "big")
    udp += b"\x00\x00" + payload
    ip = bytes([0x45, 0]) + (20 + len(udp)).to_bytes(2, "big") + bytes(5) + bytes([17])
    ip += bytes(2) + bytes([127, 0, 0, 1]) * 2
    frame = bytes(12) + b"\x08\x00" + ip + udp
    assert parse_frame(frame) == ("udp", 0x7F000001, 1234, 0x7F000001, 7946, payload)
    assert parse_frame(bytes(12) + b"\x86\xdd" + ip + udp) is None  # IPv6: not ours


# --- the simulator's scenario -----------------------------------------------------------


def test_prediction_scenarios_parse_with_the_asked_size() -> None:
    for model in MODELS:
        sc = sim.parse_scenario(scenario_text(8, model), source="test")
        assert sc.nodes == 8 and sc.profile == "lan"
    with pytest.raises(ValueError):
        scenario_text(8, "nope")


def test_prediction_measures_the_second_crash_of_the_cycle() -> None:
    res = sim.run(sim.parse_scenario(scenario_text(5, "cycle"), source="test"), seed=1,
                  progress=False)
    at = {round(d["at_s"], 3) for d in res["detections"].values()}
    assert at == {10.0, kill_time("cycle")}
    p = predict(5, 3, model="cycle")
    assert p["all_dead_s"]["n"] == 3  # one measured crash per seed, not two
    for v, f in zip(p["all_dead_values"], p["suspect_to_all_dead_values"], strict=True):
        assert v > f > 4.0 - 1e-9  # lan at N = 5: a 4 s minimum suspicion timeout


# --- a tiny real run --------------------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc and CLOCK_MONOTONIC")
def test_smoke_three_swimpy_agents_one_kill(tmp_path: Path) -> None:
    from cluster.adapters import SWIMPY
    from cluster.run import run_cluster

    nft = None
    if shutil.which("nft") and os.geteuid() == 0 and nftcount.available() is None:
        nft = nftcount.NftCounters("swimpybenchtest")  # not a running benchmark's table
    try:
        r = run_cluster(SWIMPY, 3, kills=1, window=2.0, settle=0.5, seed=1,
                        log_dir=tmp_path, nft=nft)
    finally:
        if nft is not None:
            nft.remove()
    assert r["join"]["from_last_start_s"] > 0
    assert r["detection"]["kills"] == 1 and r["detection"]["undetected"] == 0
    (kill,) = r["kills"]
    # lan: the suspicion timeout alone is 4 s; the kill must not be seen before it
    assert 4.0 < kill["all_dead_s"] < 30.0
    assert kill["first_suspect_s"] < kill["first_dead_s"]
    assert r["steady"]["cpu_percent_per_member"]["n"] == 3
    if nft is not None:
        assert r["steady"]["traffic"]["udp_datagrams_per_member_s"] > 0
