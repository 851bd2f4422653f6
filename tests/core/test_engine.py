"""Regression tests for the engine redesign (issue 7): each pins a defect a real driver
would have hit, plus the request, snapshot, keyring and delegate contracts."""

from __future__ import annotations

import logging
import os
import random
import threading

import pytest

from swimpy.core import (
    Delegate,
    Engine,
    EventKind,
    GossipVerifyRequested,
    InstallKeyRequested,
    JoinCompleted,
    JoinRequested,
    Member,
    MemberEvent,
    PacketReceived,
    RemoveKeyRequested,
    SetTimer,
    State,
    TimerFired,
    UseKeyRequested,
    UserMessageReceived,
    UserMessageRequested,
    UserMessageSent,
    encode_serf_tags,
)
from swimpy.core.timers import SuspicionTimeout
from swimpy.profiles import ConfigError, lan
from swimpy.testing import VirtualCluster
from swimpy.wire.messages import Alive, Suspect, UserMsg
from tests.core.test_node import IP, SRC, VSN, feed, mk

KEY = bytes(range(32))
KEY2 = bytes(range(1, 33))


# 1 ------------------------------------------------------------------ early timers


def test_suspicion_timer_delivered_early_still_declares_the_member_dead() -> None:
    # asyncio's call_at runs a handle up to its clock resolution early; the old engine
    # treated deadline > now as stale and the member stayed suspect forever.
    e = mk()
    feed(e, Alive(1, "b", IP, 8000, b"", VSN), Alive(1, "c", IP, 8001, b"", VSN))
    acts = feed(e, Suspect(1, "b", "c"), now=10.0)
    (timer,) = [a for a in acts if isinstance(a, SetTimer) and isinstance(a.timer, SuspicionTimeout)]
    acts = list(e.handle(TimerFired(timer.timer), timer.at - 1e-9))
    assert [(a.kind, a.member.name) for a in acts if isinstance(a, MemberEvent)] == [
        (EventKind.DEAD, "b")
    ]


# 2 ------------------------------------------------------------------ request ids


def test_two_joins_in_flight_complete_separately_with_their_own_ids() -> None:
    h = VirtualCluster()
    h.add("a")
    h.add("b")
    first = h.do("a", JoinRequested((("127.0.0.1", 1),)))
    second = h.do("a", JoinRequested((h.addr("b"),)))
    assert first != second
    h.run_until(1.0)
    done = {a.request_id: a for _, _, a in h.actions if isinstance(a, JoinCompleted)}
    assert set(done) == {first, second}
    assert done[first].contacted == 0 and len(done[first].errors) == 1
    assert done[second].contacted == 1 and done[second].errors == ()


# 4 ------------------------------------------------------------------ resolved addresses


@pytest.mark.parametrize("addr", [("web-2/10.0.0.7", 7946), ("node.example", 7946)])
def test_join_refuses_unresolved_addresses_before_anything_changes(addr: tuple[str, int]) -> None:
    e = mk()
    with pytest.raises(ValueError, match="resolve"):
        e.submit(JoinRequested((addr,)), 1.0)
    with pytest.raises(ValueError, match="port"):
        e.check(JoinRequested((("10.0.0.9", 0),)))


# 5 ------------------------------------------------------------------ optional hooks


class OnlyAckPayload(Delegate):
    def ack_payload(self) -> bytes:
        return b"coord"


def test_a_delegate_without_notify_alive_keeps_short_version_vectors() -> None:
    # memberlist refuses alives without a full Vsn only when an AliveDelegate is set
    e = mk(delegate=OnlyAckPayload())
    feed(e, Alive(1, "b", IP, 8000, b"", VSN[:3]))
    assert e.member("b") is not None


class AliveFilter(Delegate):
    def notify_alive(self, peer: Member) -> bool:
        return True


def test_a_delegate_with_notify_alive_refuses_short_version_vectors() -> None:
    e = mk(delegate=AliveFilter())
    feed(e, Alive(1, "b", IP, 8000, b"", VSN[:3]))
    assert e.member("b") is None and e.stats["dropped_bad_version"] == 1


def test_user_messages_arrive_once_as_an_action() -> None:
    e = mk(delegate=OnlyAckPayload())
    acts = feed(e, UserMsg(b"hi"))
    assert [a for a in acts if isinstance(a, UserMessageReceived)] == [
        UserMessageReceived(b"hi", False, SRC)
    ]
    assert not hasattr(Delegate, "notify_msg")


# 6 ------------------------------------------------------------------ snapshots


def test_snapshot_is_cached_until_the_table_changes_and_safe_to_read_elsewhere() -> None:
    e = mk()
    s1 = e.snapshot()
    assert e.snapshot() is s1
    feed(e, Alive(1, "b", IP, 8000, b"", VSN))
    s2 = e.snapshot()
    assert s2 is not s1 and [m.name for m in s2.members()] == ["b", "self"]
    assert [m.name for m in s1.members()] == ["self"]  # the old one never changes
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.extend(len(s2.members()) for _ in range(1000)))
    reader.start()
    for i in range(200):
        feed(e, Alive(1, f"n{i}", IP, 9000 + i, b"", VSN))
    reader.join()
    assert set(seen) == {2}


def test_statistics_are_a_frozen_typed_snapshot() -> None:
    e = mk()
    feed(e, Alive(1, "b", IP, 8000, b"", VSN), b"garbage")  # type: ignore[arg-type]
    st = e.statistics()
    assert (st.members, st.alive, st.suspect) == (2, 2, 0)
    with pytest.raises(AttributeError):
        st.alive = 5  # type: ignore[misc]
    assert st.as_dict()["alive"] == 2


# 7 ------------------------------------------------------------------ keys at run time


def test_a_node_started_without_keys_can_turn_encryption_on_and_rotate() -> None:
    h = VirtualCluster()
    h.add("a")
    h.add("b")
    h.do("b", JoinRequested((h.addr("a"),)))
    h.run_until(2.0)
    for n in "ab":  # Consul's rolling procedure: install, then encrypt, then verify
        h.do(n, InstallKeyRequested(KEY))
        h.do(n, GossipVerifyRequested(verify_incoming=False, verify_outgoing=True))
    h.run_until(4.0)
    for n in "ab":
        h.do(n, GossipVerifyRequested(verify_incoming=True, verify_outgoing=True))
    h.run_until(10.0)
    assert h.view("a") == {"a": "alive", "b": "alive"}
    # a packet sent in the clear is now refused
    before = h.nodes["a"].stats["dropped_decrypt"]
    h.handle("a", PacketReceived(h.addr("b"), b"\x08hello"))
    assert h.nodes["a"].stats["dropped_decrypt"] == before + 1
    # rotate: install, use, remove the old one
    for n in "ab":
        h.do(n, InstallKeyRequested(KEY2))
    for n in "ab":
        h.do(n, UseKeyRequested(KEY2))
    h.run_until(12.0)
    for n in "ab":
        h.do(n, RemoveKeyRequested(KEY))
        assert h.nodes[n].keys() == (KEY2,)
    h.run_until(20.0)
    assert h.view("b") == {"a": "alive", "b": "alive"}


def test_keyring_misuse_raises_before_the_owner_loop() -> None:
    e = mk()
    with pytest.raises(ValueError):
        e.check(InstallKeyRequested(b"short"))
    with pytest.raises(ValueError, match="not installed"):
        e.check(UseKeyRequested(KEY))
    e.submit(InstallKeyRequested(KEY), 1.0)
    with pytest.raises(ValueError, match="primary"):
        e.submit(RemoveKeyRequested(KEY), 1.0)


def test_engine_always_needs_a_nonce_source() -> None:
    with pytest.raises(ConfigError) as info:
        Engine(lan(name="x"), advertise=("127.0.0.1", 7946), rng=random.Random(1),
               nonce_source=None)  # type: ignore[arg-type]
    assert info.value.field == "nonce_source"
    Engine(lan(name="x"), advertise=("127.0.0.1", 7946), rng=random.Random(1),
           nonce_source=os.urandom)


# requests -------------------------------------------------------------------------


def test_user_message_to_unknown_member_is_misuse_and_sent_reports_completion() -> None:
    e = mk()
    with pytest.raises(KeyError):
        e.submit(UserMessageRequested("ghost", b"x"), 1.0)
    feed(e, Alive(1, "b", IP, 8000, b"", VSN))
    rid, acts = e.submit(UserMessageRequested("b", b"x"), 1.0)
    assert UserMessageSent(rid, None) in acts


def test_requests_go_through_submit_not_handle() -> None:
    e = mk()
    with pytest.raises(TypeError, match="submit"):
        e.handle(JoinRequested((("127.0.0.1", 1),)), 1.0)  # type: ignore[arg-type]


# member records -------------------------------------------------------------------


def test_member_tags_decode_serf_metadata_and_are_empty_otherwise() -> None:
    e = mk()
    feed(e, Alive(1, "b", IP, 8000, encode_serf_tags({"role": "web"}), VSN),
         Alive(1, "c", IP, 8001, b"raw", VSN), Alive(1, "d", IP, 8002, b"\xff\xc1", VSN))
    assert dict(e.member("b").tags) == {"role": "web"}  # type: ignore[union-attr]
    assert dict(e.member("c").tags) == {}  # type: ignore[union-attr]
    d = e.member("d")  # malformed tags: untrusted input, no tags
    assert d is not None and dict(d.tags) == {}
    b = e.member("b")
    assert b is not None and b.ip_bytes == IP and b.addr == "127.0.0.1" and b.state == State.ALIVE


def test_copies_of_a_known_alive_are_counted_not_dropped_and_change_nothing() -> None:
    e = mk()
    feed(e, Alive(3, "b", IP, 8000, b"m", VSN))
    before = e.member("b")
    for _ in range(5):
        assert feed(e, Alive(3, "b", IP, 8000, b"m", VSN), Alive(2, "b", IP, 8000, b"m", VSN)) == []
    assert e.member("b") is before
    stats = e.statistics()
    assert stats.counters["alive_duplicates"] == 10 and stats.dropped == 0
    # a copy from another address is no duplicate: it is a name conflict
    feed(e, Alive(3, "b", IP, 8001, b"m", VSN))
    assert e.stats["name_conflicts"] == 1


def test_warnings_about_bad_packets_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    from swimpy.core.inputs import PacketReceived

    eng = Engine(lan(name="rl"), advertise=("127.0.0.1", 7946), rng=random.Random(1),
                 nonce_source=os.urandom)
    eng.start(0.0)
    with caplog.at_level(logging.WARNING, logger="swimpy.core"):
        for i in range(100):
            eng.handle(PacketReceived(("10.0.0.9", 1), b"\x0c\x00\x00\x00\x00\x01"), 1.0 + i * 0.01)
        eng.handle(PacketReceived(("10.0.0.9", 1), b"\x0c\x00\x00\x00\x00\x01"), 20.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "99 more like it" in warnings[1]
    assert eng.statistics().dropped == 101
