"""The SWIM + Lifeguard engine: one member of one pool, as a sans-IO state machine.

``Node.handle(input, now)`` takes one input (a packet, a stream, a timer, a request) with
the current time and returns the actions to carry out. The node never reads a clock,
opens a socket or uses global randomness; the trio runtime and the simulator drive the
very same code.

The algorithms follow hashicorp/memberlist v0.2.2 (state.go, net.go, suspicion.go,
awareness.go, queue.go); see ``shared/spec/LIFEGUARD.md``. Where upstream changed
behaviour without changing bytes we follow upstream, marked ``[UPSTREAM]``. Serf's
retention of failed/left members and its reconnect loop live here too, so that a cluster
split by a partition merges again after it heals.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from swimpy.core.lifeguard import (
    Awareness,
    Suspicion,
    expected_confirmations,
    push_pull_scale,
    suspicion_timeout,
)
from swimpy.core.queue import Broadcast, BroadcastQueue
from swimpy.core.types import (
    Action,
    Address,
    BroadcastRequested,
    CloseStream,
    EventKind,
    Input,
    JoinCompleted,
    JoinRequested,
    LeaveCompleted,
    LeaveRequested,
    Member,
    MemberEvent,
    MemberSnapshot,
    MetaUpdateCompleted,
    MetaUpdateRequested,
    OpenStream,
    PacketReceived,
    PingCompleted,
    ReplyStream,
    SendPacket,
    SetTimer,
    State,
    StreamFailed,
    StreamPayload,
    StreamReceived,
    StreamResponse,
    TimerFired,
    UserMessageReceived,
    UserMessageRequested,
)
from swimpy.profiles import Config, ConfigError
from swimpy.wire.constants import (
    COMPOUND_HEADER_OVERHEAD,
    COMPOUND_MAX_PARTS,
    COMPOUND_PART_OVERHEAD,
    USER_MSG_OVERHEAD,
)
from swimpy.wire.crypto import Keyring
from swimpy.wire.errors import NeedMoreData, WireError
from swimpy.wire.messages import (
    Ack,
    Alive,
    Dead,
    Err,
    IndirectPing,
    Nack,
    PacketMessage,
    Ping,
    PushNodeState,
    Suspect,
    UserMsg,
    encode_message,
)
from swimpy.wire.packet import (
    NonceSource,
    WireOptions,
    compound_size,
    decode_packet_untrusted,
    encode_packet,
    make_compound,
)
from swimpy.wire.sizes import message_size, push_pull_header_size
from swimpy.wire.stream import (
    PushPull,
    UserStream,
    encode_stream_message,
    frame_stream,
    parse_stream_untrusted,
)

log = logging.getLogger("swimpy.core")

_U32 = 0xFFFFFFFF

#: Timer keys (opaque to drivers).
_T_PROBE = ("probe",)
_T_GOSSIP = ("gossip",)
_T_PUSH_PULL = ("push_pull",)
_T_REAP = ("reap",)
_T_RECONNECT = ("reconnect",)
_T_REJOIN = ("rejoin",)

#: Most ack handlers (our probe + indirect probes we relay) in flight; more are dropped.
_MAX_ACK_HANDLERS = 4096
#: Raw IP bytes -> string, shared by every node of the process (a pure function's memo;
#: bounded, so thousands of simulated nodes don't each keep a copy).
_IP_CACHE_MAX = 65536
_IP_CACHE: dict[bytes, str] = {}


class Delegate:
    """Hooks a daemon plugs into the engine. Every method has a harmless default.

    These are called synchronously from ``Node.handle``; they must not block. An
    exception from a hook is logged and treated as the hook's most conservative answer.
    """

    def local_state(self, join: bool) -> bytes:
        """User state to ship in a push/pull (Serf: its ``messagePushPull``)."""
        return b""

    def merge_remote_state(self, buf: bytes, join: bool) -> None:
        """A peer's user state from a push/pull."""

    def get_broadcasts(self, overhead: int, limit: int) -> list[bytes]:
        """Extra user broadcasts to piggyback (each sent as a type-8 message)."""
        return []

    def notify_merge(self, peers: Sequence[Member]) -> bool:
        """Join veto: return False to refuse merging a joining cluster's members."""
        return True

    def notify_alive(self, peer: Member) -> bool:
        """Alive filter: return False to ignore an alive message about ``peer``."""
        return True

    def notify_conflict(self, existing: Member, other: Member) -> None:
        """Another address claims the name of a live member (memberlist's Conflict)."""

    def ack_payload(self) -> bytes:
        """Payload to put in acks to probes of us (Serf: a Vivaldi coordinate)."""
        return b""

    def notify_msg(self, payload: bytes, reliable: bool) -> None:
        """A user message or user broadcast arrived (``Delegate.NotifyMsg``). The same
        payload is also returned as a ``UserMessageReceived`` action."""


@dataclass(slots=True)
class _Probe:
    seq: int
    #: the member as it was when the probe started (memberlist probes a copy)
    target: Member
    sent: float
    deadline: float
    #: the direct-ack window (ProbeTimeout) has passed: indirect probes are out
    indirect: bool = False
    expected_nacks: int = 0
    nacks: int = 0
    fallback_ok: bool = False
    done: bool = False


@dataclass(slots=True)
class _Relay:
    """We are the intermediary of an indirect probe."""

    seq: int  # the requester's sequence number
    reply_to: Address
    want_nack: bool


@dataclass(slots=True)
class _Join:
    pending: set[int] = field(default_factory=set)
    contacted: int = 0
    errors: list[str] = field(default_factory=list)
    report: bool = True


def _ip_bytes(host: str) -> bytes:
    ip = ipaddress.ip_address(host)
    return ip.packed


class Node:
    """One member of one memberlist pool.

    ``advertise`` is the concrete (ip, port) peers reach us at; the runtime resolves
    wildcard bind addresses and port 0 before creating the node. ``rng`` is the only
    source of randomness; ``nonce_source`` (``os.urandom`` in production) makes GCM
    nonces and must never be a seeded generator outside tests and simulation.
    ``encode`` = False passes message objects instead of bytes (the simulator's fast
    mode); decisions are the same either way.
    """

    def __init__(
        self,
        config: Config,
        *,
        advertise: Address,
        rng: random.Random,
        now: float,
        meta: bytes = b"",
        delegate: Delegate | None = None,
        nonce_source: NonceSource | None = None,
        encode: bool = True,
    ) -> None:
        if not config.name:
            raise ConfigError("name", "the node needs a name (Config.name is empty)")
        if len(meta) > config.meta_max_size:
            raise ConfigError(
                "meta", f"meta is {len(meta)} bytes, more than meta_max_size={config.meta_max_size}"
            )
        try:
            self._ip = _ip_bytes(advertise[0])
        except ValueError:
            raise ConfigError(
                "advertise_addr", f"{advertise[0]!r} is not an IP address to advertise"
            ) from None
        if not 0 < advertise[1] <= 0xFFFF:
            raise ConfigError("advertise_port", f"{advertise[1]} is not a usable port")
        self.config = config
        self.name = config.name
        self.advertise: Address = (str(ipaddress.ip_address(advertise[0])), advertise[1])
        self._rng = rng
        self._delegate = delegate or Delegate()
        self._nonce = nonce_source
        self._encode = encode
        keyring = Keyring(list(config.secret_keys)) if config.secret_keys else None
        if keyring is not None and encode and nonce_source is None:
            raise ConfigError("secret_keys", "encryption needs a nonce_source (os.urandom)")
        self.wire = WireOptions(
            keyring=keyring,
            encryption_version=0 if config.protocol_version == 1 else 1,
            verify_incoming=config.gossip_verify_incoming,
            verify_outgoing=config.gossip_verify_outgoing,
            compression=config.enable_compression,
            label=config.label.encode(),
            skip_inbound_label_check=config.skip_inbound_label_check,
        )
        self._vsn = config.vsn
        self._cidrs = [ipaddress.ip_network(c, strict=False) for c in config.cidrs_allowed]
        self._out: list[Action] = []

        self._members: dict[str, Member] = {}
        self._order: list[str] = []
        self._probe_index = 0
        self._suspicions: dict[str, Suspicion] = {}
        self._acks: dict[int, _Probe | _Relay] = {}
        self._probe: _Probe | None = None
        self._queue = BroadcastQueue(config.retransmit_mult)
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._seq = 0
        self._incarnation = 0
        self._stream_seq = 0
        #: stream id -> what it is for
        self._streams: dict[int, tuple[str, int]] = {}
        self._joins: dict[int, _Join] = {}
        self._leaving = False
        self._left_token: int | None = None
        self._waiting: dict[int, tuple[str, int]] = {}  # notify id -> (kind, token)
        self._notify_seq = 0
        self._shutdown = False
        #: Serf-style retention: name -> (record, since)
        self.failed: dict[str, tuple[Member, float]] = {}
        self.left: dict[str, tuple[Member, float]] = {}
        self.stats: Counter[str] = Counter()
        self._started = False
        self._meta = bytes(meta)
        self._now = now
        self._probe_at = now
        self._tick_pending = False
        self._gossip_idle = False
        self._gossip_idle_next = now

    # ------------------------------------------------------------------ public queries

    @property
    def incarnation(self) -> int:
        return self._incarnation

    @property
    def health_score(self) -> int:
        return self._awareness.score

    @property
    def num_nodes(self) -> int:
        """memberlist's ``numNodes``: every entry of the table, self, dead and left included."""
        return len(self._order)

    @property
    def leaving(self) -> bool:
        return self._leaving

    def member(self, name: str) -> Member | None:
        return self._members.get(name)

    def members(self) -> list[Member]:
        """Members that are alive or suspect (memberlist ``Members()``), self included."""
        return [m for m in self._members.values() if m.state in (State.ALIVE, State.SUSPECT)]

    def table(self) -> dict[str, Member]:
        """A copy of the whole member table (including dead and left entries)."""
        return dict(self._members)

    def all_members(self) -> list[Member]:
        """Serf's view: the table plus failed and left members still retained."""
        out = dict(self._members)
        for name, (m, _) in self.failed.items():
            out.setdefault(name, m)
        for name, (m, _) in self.left.items():
            out.setdefault(name, m)
        return list(out.values())

    def statistics(self) -> dict[str, int]:
        s = dict(self.stats)
        s["members"] = len(self._order)
        s["alive"] = sum(1 for m in self._members.values() if m.state == State.ALIVE)
        s["suspect"] = sum(1 for m in self._members.values() if m.state == State.SUSPECT)
        s["dead"] = sum(1 for m in self._members.values() if m.state == State.DEAD)
        s["left"] = sum(1 for m in self._members.values() if m.state == State.LEFT)
        s["queue_depth"] = len(self._queue)
        s["health_score"] = self._awareness.score
        s["incarnation"] = self._incarnation
        return s

    def stream_needs_more(self, data: bytes) -> bool:
        """True while an inbound stream's request is incomplete (read more bytes)."""
        try:
            parse_stream_untrusted(data, self.wire)
        except NeedMoreData:
            return True
        except WireError:
            return False
        return False

    # ------------------------------------------------------------------ lifecycle

    def start(self, now: float) -> list[Action]:
        """Set our own alive state and the periodic timers (memberlist ``Create``)."""
        if self._started:
            raise RuntimeError("node already started")
        self._started = True
        self._incarnation = 1
        self._alive_node(
            Alive(1, self.name, self._ip, self.advertise[1], self._meta, self._vsn),
            now,
            bootstrap=True,
        )
        c = self.config
        self._probe_at = now + self._stagger(c.probe_interval) + c.probe_interval
        self._timer(_T_PROBE, self._probe_at)
        if c.gossip_interval > 0 and c.gossip_nodes > 0:
            self._timer(_T_GOSSIP, now + self._stagger(c.gossip_interval) + c.gossip_interval)
        if c.push_pull_interval > 0:
            self._timer(
                _T_PUSH_PULL,
                now
                + self._stagger(c.push_pull_interval)
                + push_pull_scale(c.push_pull_interval, self.num_nodes),
            )
        # Serf starts these loops unstaggered; a random phase keeps a cluster that
        # started together from reconnecting in lock-step after a partition heals.
        self._timer(_T_REAP, now + self._stagger(c.reap_interval) + c.reap_interval)
        self._timer(
            _T_RECONNECT, now + self._stagger(c.reconnect_interval) + c.reconnect_interval
        )
        if c.rejoin_interval > 0 and c.seeds:
            self._timer(_T_REJOIN, now + self._stagger(c.rejoin_interval) + c.rejoin_interval)
        return self._flush()

    def shutdown(self) -> None:
        """Stop taking part: every later input is ignored (peers will see us fail)."""
        self._shutdown = True

    def _stagger(self, interval: float) -> float:
        return self._rng.random() * interval

    # ------------------------------------------------------------------ dispatch

    def handle(self, inp: Input, now: float) -> list[Action]:
        if not self._started:
            raise RuntimeError("call Node.start(now) before handle()")
        if self._shutdown:
            return []
        self._now = now
        if isinstance(inp, TimerFired):
            self._on_timer(inp.key, now)
        elif isinstance(inp, PacketReceived):
            self._on_packet(inp, now)
        elif isinstance(inp, StreamReceived):
            self._on_stream(inp, now)
        elif isinstance(inp, StreamResponse):
            self._on_stream_response(inp, now)
        elif isinstance(inp, StreamFailed):
            self._on_stream_failed(inp.stream_id, inp.reason, now)
        elif isinstance(inp, JoinRequested):
            self._join(inp.addresses, inp.token, now, report=True)
        elif isinstance(inp, LeaveRequested):
            self._leave(inp, now)
        elif isinstance(inp, MetaUpdateRequested):
            self._update_meta(inp, now)
        elif isinstance(inp, BroadcastRequested):
            self._queue_user_broadcast(inp.payload)
        elif isinstance(inp, UserMessageRequested):
            self._send_user(inp, now)
        else:
            raise TypeError(f"not an engine input: {inp!r}")
        return self._flush()

    def _flush(self) -> list[Action]:
        for token in self._queue.take_finished():
            waiting = self._waiting.pop(token, None)
            if waiting is not None:
                self._complete_wait(waiting)
        out, self._out = self._out, []
        return out

    def _timer(self, key: Hashable, at: float) -> None:
        self._out.append(SetTimer(key, at))

    def _emit(self, kind: EventKind, m: Member) -> None:
        self._out.append(MemberEvent(kind, m))

    def _on_timer(self, key: Hashable, now: float) -> None:
        if not isinstance(key, tuple) or not key:
            return
        kind = key[0]
        c = self.config
        if kind == "probe":
            # A ticker: the next tick keeps the phase (no drift when a timer is late),
            # and ticks missed entirely are dropped, as Go's time.Ticker does.
            at = self._probe_at + c.probe_interval
            while at <= now:
                at += c.probe_interval
            self._probe_at = at
            self._timer(_T_PROBE, at)
            if self._probe is None:
                self._probe_tick(now)
            elif not self._tick_pending:
                # Go's ticker channel holds one tick: the next probe starts as soon as
                # the running one ends.
                self._tick_pending = True
            else:
                self.stats["probe_ticks_skipped"] += 1
        elif kind == "gossip":
            if not len(self._queue) and type(self._delegate) is Delegate:
                # Nothing to gossip: stop ticking until something is queued, then resume
                # on the same tick grid (saves a timer event per interval when idle).
                self._gossip_idle_next = now + c.gossip_interval
                self._gossip_idle = True
                return
            self._timer(_T_GOSSIP, now + c.gossip_interval)
            self._gossip(now)
        elif kind == "push_pull":
            self._timer(_T_PUSH_PULL, now + push_pull_scale(c.push_pull_interval, self.num_nodes))
            self._push_pull(now)
        elif kind == "probe_timeout":
            self._probe_timeout(key[1], now)
        elif kind == "probe_end":
            self._probe_end(key[1], now)
        elif kind == "relay_end":
            self._relay_end(key[1])
        elif kind == "suspect":
            self._suspicion_fired(key[1], now)
        elif kind == "reap":
            self._timer(_T_REAP, now + c.reap_interval)
            self._reap(now)
        elif kind == "reconnect":
            self._timer(_T_RECONNECT, now + c.reconnect_interval)
            self._reconnect(now)
        elif kind == "rejoin":
            self._timer(_T_REJOIN, now + c.rejoin_interval)
            self._rejoin(now)
        elif kind == "wait_timeout":
            waiting = self._waiting.pop(key[1], None)
            if waiting is not None:
                self._complete_wait(waiting)

    # ------------------------------------------------------------------ addresses

    def _ip_str(self, raw: bytes) -> str | None:
        s = _IP_CACHE.get(raw)
        if s is not None:
            return s
        try:
            if len(raw) == 4:
                ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(raw)
            elif len(raw) == 16:
                ip6 = ipaddress.IPv6Address(raw)
                ip = ip6.ipv4_mapped or ip6
            else:
                return None
        except ValueError:
            return None
        s = str(ip)
        if len(_IP_CACHE) >= _IP_CACHE_MAX:
            _IP_CACHE.clear()
        _IP_CACHE[raw] = s
        return s

    def _ip_allowed(self, host: str) -> bool:
        if not self._cidrs:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._cidrs)

    def _drop(self, reason: str, detail: str) -> None:
        self.stats["dropped_" + reason] += 1
        log.debug("%s: dropped (%s): %s", self.name, reason, detail)

    # ------------------------------------------------------------------ sending

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & _U32
        return self._seq

    def _nonce_bytes(self, n: int) -> bytes:
        assert self._nonce is not None
        return self._nonce(n)

    def _part(self, msg: PacketMessage) -> tuple[bytes, int]:
        """Encoded bytes and size of one message (fast mode: size only, computed)."""
        if self._encode:
            raw = encode_message(msg)
            return raw, len(raw)
        return b"", message_size(msg)

    def _send(
        self,
        dest: Address,
        msgs: list[PacketMessage],
        raws: list[bytes],
        sizes: list[int],
        crc: bool,
    ) -> None:
        self.stats["packets_sent"] += 1
        if self._encode:
            payload = raws[0] if len(raws) == 1 else make_compound(raws)
            data = encode_packet(payload, self.wire, crc=crc, nonce_source=self._nonce)
            self.stats["bytes_sent"] += len(data)
            self._out.append(SendPacket(dest, data, (), len(data)))
        else:
            size = sizes[0] if len(sizes) == 1 else compound_size(sizes)
            if crc:
                size += 5
            self.stats["bytes_sent"] += size
            self._out.append(SendPacket(dest, None, tuple(msgs), size))

    def _send_msg(self, dest: Address, msg: PacketMessage) -> None:
        """``encodeAndSendMsg``: one message with as many broadcasts piggybacked as fit."""
        raw, n = self._part(msg)
        avail = self.config.udp_buffer_size - n - COMPOUND_HEADER_OVERHEAD
        avail -= self.wire.packet_overhead()
        bcasts = self._get_broadcasts(COMPOUND_PART_OVERHEAD, avail, COMPOUND_MAX_PARTS - 1)
        msgs = [msg]
        raws = [raw]
        sizes = [n]
        for b in bcasts:
            msgs.append(b.message)
            raws.append(b.part)  # type: ignore[arg-type]
            sizes.append(b.size)
        # v0.2.2 sendMsg passes no node: no CRC on pings, acks, nacks (WIRE.md §5.1).
        self._send(dest, msgs, raws, sizes, crc=False)

    def _get_broadcasts(self, overhead: int, limit: int, max_parts: int) -> list[Broadcast]:
        out = self._queue.get_broadcasts(overhead, limit, self.num_nodes, max_parts)
        used = sum(overhead + b.size for b in out)
        remaining = limit - used
        if remaining > overhead + USER_MSG_OVERHEAD and len(out) < max_parts:
            try:
                extra = self._delegate.get_broadcasts(overhead + USER_MSG_OVERHEAD, remaining)
            except Exception:
                log.exception("%s: delegate get_broadcasts failed", self.name)
                extra = []
            for payload in extra:
                if len(out) >= max_parts:
                    break
                m = UserMsg(bytes(payload))
                raw = encode_message(m)
                out.append(Broadcast(None, m, raw, len(raw)))
        return out

    def _broadcast(self, name: str | None, msg: PacketMessage, notify: int | None = None) -> None:
        raw = encode_message(msg)
        self._queue.queue(Broadcast(name, msg, raw, len(raw), notify))
        if self._gossip_idle:
            self._wake_gossip()

    def _queue_user_broadcast(self, payload: bytes) -> None:
        self._broadcast(None, UserMsg(bytes(payload)))

    def _wake_gossip(self) -> None:
        """Resume the idle gossip ticker at its next tick at or after now."""
        self._gossip_idle = False
        interval = self.config.gossip_interval
        at = self._gossip_idle_next
        if self._now > at:
            at += math.ceil((self._now - at) / interval) * interval
        self._timer(_T_GOSSIP, at)

    def _new_stream(self, purpose: str, ref: int) -> int:
        self._stream_seq += 1
        self._streams[self._stream_seq] = (purpose, ref)
        return self._stream_seq

    def _open_stream(
        self,
        purpose: str,
        ref: int,
        dest: Address,
        msg: StreamPayload,
        timeout: float,
        expect_reply: bool,
    ) -> int:
        sid = self._new_stream(purpose, ref)
        self.stats["streams_opened"] += 1
        if self._encode:
            assert not isinstance(msg, MemberSnapshot)
            body = encode_stream_message(msg)
            data = frame_stream(body, self.wire, nonce_source=self._nonce, dialer=True)
            self.stats["bytes_sent"] += len(data)
            self._out.append(OpenStream(sid, dest, data, msg, len(data), timeout, expect_reply))
        else:
            size = _payload_size(msg)
            self.stats["bytes_sent"] += size
            self._out.append(OpenStream(sid, dest, None, msg, size, timeout, expect_reply))
        return sid

    def _reply_stream(self, sid: int, msg: StreamPayload) -> None:
        if self._encode:
            assert not isinstance(msg, MemberSnapshot)
            body = encode_stream_message(msg)
            data = frame_stream(body, self.wire, nonce_source=self._nonce, dialer=False)
            self.stats["bytes_sent"] += len(data)
            self._out.append(ReplyStream(sid, data, msg, len(data)))
        else:
            size = _payload_size(msg)
            self.stats["bytes_sent"] += size
            self._out.append(ReplyStream(sid, None, msg, size))

    # ------------------------------------------------------------------ k random nodes

    def _k_random(self, k: int, ok: Callable[[Member], bool]) -> list[Member]:
        """``kRandomNodes``; [UPSTREAM v0.6.0] exhaustive shuffle when n < 3k."""
        n = len(self._order)
        if k <= 0 or n == 0:
            return []
        out: list[Member] = []
        members = self._members
        order = self._order
        if n < 3 * k:
            idx = list(range(n))
            self._rng.shuffle(idx)
            for i in idx:
                m = members[order[i]]
                if ok(m):
                    out.append(m)
                    if len(out) >= k:
                        break
            return out
        seen: set[str] = set()
        rand = self._rng.randrange
        for _ in range(3 * n):
            m = members[order[rand(n)]]
            if m.name in seen or not ok(m):
                continue
            seen.add(m.name)
            out.append(m)
            if len(out) >= k:
                break
        return out

    # ------------------------------------------------------------------ probing

    def _probe_tick(self, now: float) -> None:
        """``probe()``: one probe per tick over a shuffled round-robin (LIFEGUARD §3)."""
        num_check = 0
        while True:
            n = len(self._order)
            if num_check >= n:
                return
            if self._probe_index >= n:
                self._reset_nodes(now)
                self._probe_index = 0
                num_check += 1
                continue
            m = self._members[self._order[self._probe_index]]
            self._probe_index += 1
            if m.name == self.name or m.state in (State.DEAD, State.LEFT):
                num_check += 1
                continue
            self._probe_node(m, now)
            return

    def _reset_nodes(self, now: float) -> None:
        """Reap dead [UPSTREAM v0.3.1: and left] members past GossipToTheDeadTime; shuffle."""
        gttd = self.config.gossip_to_the_dead_time
        keep = []
        for name in self._order:
            m = self._members[name]
            if m.state in (State.DEAD, State.LEFT) and now - m.state_change > gttd:
                del self._members[name]
                self._suspicions.pop(name, None)
                self.stats["reaped_from_table"] += 1
                continue
            keep.append(name)
        self._order = keep
        self._rng.shuffle(self._order)

    def _probe_node(self, m: Member, now: float) -> None:
        c = self.config
        interval = self._awareness.scale_timeout(c.probe_interval)
        seq = self._next_seq()
        probe = _Probe(seq, m, now, now + interval)
        self._probe = probe
        self._acks[seq] = probe
        ping = Ping(seq, m.name, self._ip, self.advertise[1], self.name)
        self.stats["probes"] += 1
        if m.state == State.ALIVE:
            self._send_msg(m.address, ping)
        else:
            # Buddy system: tell a suspect it is suspected, with the probe itself.
            s = Suspect(m.incarnation, m.name, self.name)
            (r1, n1), (r2, n2) = self._part(ping), self._part(s)
            self._send(m.address, [ping, s], [r1, r2], [n1, n2], crc=m.pmax >= 5)
        self._timer(("probe_timeout", seq), now + c.probe_timeout)
        self._timer(("probe_end", seq), probe.deadline)

    def _probe_timeout(self, seq: int, now: float) -> None:
        p = self._probe
        if p is None or p.seq != seq or p.done:
            return
        p.indirect = True
        m = p.target
        # Indirect probes through k random alive members.
        peers = self._k_random(
            self.config.indirect_checks,
            lambda x: x.name != self.name and x.name != m.name and x.state == State.ALIVE,
        )
        for peer in peers:
            want_nack = peer.pmax >= 4
            if want_nack:
                p.expected_nacks += 1
            ind = IndirectPing(
                p.seq, m.ip, m.port, m.name, want_nack, self._ip, self.advertise[1], self.name
            )
            self.stats["indirect_probes"] += 1
            self._send_msg(peer.address, ind)
        # TCP fallback, concurrently.
        if not self.config.disable_tcp_pings and m.pmax >= 3:
            remaining = p.deadline - now
            if remaining > 0:
                self.stats["tcp_fallback_probes"] += 1
                ping = Ping(p.seq, m.name, self._ip, self.advertise[1], self.name)
                self._open_stream("fallback", p.seq, m.address, ping, remaining, True)

    def _probe_end(self, seq: int, now: float) -> None:
        p = self._probe
        if p is None or p.seq != seq or p.done:
            return
        p.done = True
        self._probe = None
        self._acks.pop(seq, None)
        m = p.target
        if p.fallback_ok:
            log.info("%s: was able to reach %s over TCP but not UDP", self.name, m.name)
            self.stats["tcp_fallback_successes"] += 1
            self._awareness.apply_delta(-1)
        else:
            delta = max(0, p.expected_nacks - p.nacks) if p.expected_nacks > 0 else 1
            self._awareness.apply_delta(delta)
            self.stats["probes_failed"] += 1
            log.info("%s: suspect %s has failed, no acks received", self.name, m.name)
            # The incarnation from probe start: a refutation that arrived meanwhile makes
            # this suspicion stale, as in memberlist (it suspects its copy of the node).
            self._suspect_node(Suspect(m.incarnation, m.name, self.name), now)
        self._run_pending_tick(now)

    def _run_pending_tick(self, now: float) -> None:
        if self._tick_pending and self._probe is None:
            self._tick_pending = False
            self._probe_tick(now)

    def _on_ack(self, ack: Ack, now: float) -> None:
        h = self._acks.pop(ack.seq_no, None)
        if h is None:
            self._drop("unknown_ack", f"ack for unknown sequence number {ack.seq_no}")
            return
        self.stats["acks"] += 1
        if isinstance(h, _Relay):
            self._send_msg(h.reply_to, Ack(h.seq))
            return
        if h.done:
            return
        h.done = True
        self._awareness.apply_delta(-1)
        if not h.indirect:
            # memberlist reports RTT only for an ack within ProbeTimeout; a late or relayed
            # ack saves the member but is no round-trip sample (Serf's coordinates).
            self._out.append(PingCompleted(h.target.name, now - h.sent, ack.payload))
        if self._probe is h:
            self._probe = None
            self._run_pending_tick(now)

    def _on_nack(self, nack: Nack) -> None:
        h = self._acks.get(nack.seq_no)
        if isinstance(h, _Probe) and not h.done:
            h.nacks += 1
            self.stats["nacks"] += 1
        else:
            self._drop("unknown_nack", f"nack for unknown sequence number {nack.seq_no}")

    def _relay_end(self, seq: int) -> None:
        h = self._acks.pop(seq, None)
        if isinstance(h, _Relay) and h.want_nack:
            self._send_msg(h.reply_to, Nack(h.seq))

    def _on_ping(self, ping: Ping, source: Address) -> None:
        if ping.node and ping.node != self.name:
            self._drop("wrong_node", f"ping for {ping.node!r}")
            return
        reply_to = source
        if ping.source_addr and ping.source_port:
            host = self._ip_str(ping.source_addr)
            if host is not None:
                reply_to = (host, ping.source_port)
        try:
            payload = self._delegate.ack_payload()
        except Exception:
            log.exception("%s: delegate ack_payload failed", self.name)
            payload = b""
        self._send_msg(reply_to, Ack(ping.seq_no, payload))

    def _on_indirect_ping(self, ind: IndirectPing, source: Address, now: float) -> None:
        host = self._ip_str(ind.target)
        if host is None:
            self._drop("malformed", "indirect ping with a bad target address")
            return
        target_port = ind.port
        if target_port == 0 or self.config.protocol_version < 2:
            target_port = self.config.bind_port or self.advertise[1]
        reply_to = source
        if ind.source_addr and ind.source_port:
            h = self._ip_str(ind.source_addr)
            if h is not None:
                reply_to = (h, ind.source_port)
        if len(self._acks) >= _MAX_ACK_HANDLERS:
            self._drop("overload", "too many indirect probes in flight")
            return
        seq = self._next_seq()
        self._acks[seq] = _Relay(ind.seq_no, reply_to, ind.nack)
        self._timer(("relay_end", seq), now + self.config.probe_timeout)
        self._send_msg(
            (host, target_port), Ping(seq, ind.node, self._ip, self.advertise[1], self.name)
        )

    # ------------------------------------------------------------------ gossip

    def _gossip(self, now: float) -> None:
        if not len(self._queue) and type(self._delegate) is Delegate:
            return  # nothing to send: skip the target choice entirely
        gttd = self.config.gossip_to_the_dead_time
        me = self.name

        def ok(m: Member) -> bool:
            if m.name == me or m.state == State.LEFT:
                return False
            return not (m.state == State.DEAD and now - m.state_change > gttd)

        targets = self._k_random(self.config.gossip_nodes, ok)
        avail = self.config.udp_buffer_size - COMPOUND_HEADER_OVERHEAD
        avail -= self.wire.packet_overhead()
        for t in targets:
            bcasts = self._get_broadcasts(COMPOUND_PART_OVERHEAD, avail, COMPOUND_MAX_PARTS)
            if not bcasts:
                return
            self.stats["gossip_packets"] += 1
            self._send(
                t.address,
                [b.message for b in bcasts],
                [b.part for b in bcasts],  # type: ignore[misc]
                [b.size for b in bcasts],
                crc=t.pmax >= 5,
            )

    # ------------------------------------------------------------------ packets in

    def _on_packet(self, pkt: PacketReceived, now: float) -> None:
        self.stats["packets_received"] += 1
        if not self._ip_allowed(pkt.source[0]):
            self._drop("cidr", f"packet from {pkt.source[0]} outside cidrs_allowed")
            return
        if pkt.data is None:
            msgs: Sequence[PacketMessage] = pkt.messages
        else:
            self.stats["bytes_received"] += len(pkt.data)
            try:
                decoded = decode_packet_untrusted(pkt.data, self.wire)
            except WireError as exc:
                self._drop(exc.reason, f"packet from {pkt.source}: {exc}")
                log.warning("%s: dropped packet from %s: %s", self.name, pkt.source, exc)
                return
            for err in decoded.errors:
                self._drop(err.reason, f"part of a packet from {pkt.source}: {err}")
            if decoded.truncated_parts:
                self.stats["dropped_truncated_parts"] += decoded.truncated_parts
            msgs = decoded.messages
        for msg in msgs:
            self._on_message(msg, pkt.source, now)

    def _on_message(self, msg: PacketMessage, source: Address, now: float) -> None:
        if isinstance(msg, Ping):
            self._on_ping(msg, source)
        elif isinstance(msg, Ack):
            self._on_ack(msg, now)
        elif isinstance(msg, Alive):
            self._on_alive(msg, now)
        elif isinstance(msg, Suspect):
            self._suspect_node(msg, now)
        elif isinstance(msg, Dead):
            self._dead_node(msg, now)
        elif isinstance(msg, IndirectPing):
            self._on_indirect_ping(msg, source, now)
        elif isinstance(msg, Nack):
            self._on_nack(msg)
        elif isinstance(msg, UserMsg):
            self._deliver_user(msg.payload, False, source)
        else:
            self._drop("unexpected", f"{type(msg).__name__} over UDP")

    def _deliver_user(self, payload: bytes, reliable: bool, source: Address) -> None:
        self.stats["user_messages_received"] += 1
        try:
            self._delegate.notify_msg(payload, reliable)
        except Exception:
            log.exception("%s: delegate notify_msg failed", self.name)
        self._out.append(UserMessageReceived(payload, reliable, source))

    def _on_alive(self, a: Alive, now: float) -> None:
        host = self._ip_str(a.addr)
        if host is None:
            self._drop("malformed", f"alive for {a.node!r} with a {len(a.addr)}-byte address")
            return
        if not self._ip_allowed(host):
            self._drop("cidr", f"alive for {a.node!r} from {host} outside cidrs_allowed")
            return
        self._alive_node(a, now)

    # ------------------------------------------------------------------ merge rules

    def _alive_node(
        self, a: Alive, now: float, *, bootstrap: bool = False, notify: int | None = None
    ) -> None:
        """memberlist ``aliveNode`` (LIFEGUARD §8.1): the one place alive is merged."""
        if not a.node:
            self._drop("malformed", "alive with an empty node name")
            return
        is_local = a.node == self.name
        if self._leaving and is_local:
            return
        vsn = a.vsn
        if len(vsn) >= 3 and (vsn[0] == 0 or vsn[1] == 0 or vsn[0] > vsn[1]):
            self._drop("bad_version", f"alive for {a.node!r} with versions {list(vsn)}")
            return
        host = self._ip_str(a.addr)
        if host is None:
            self._drop("malformed", f"alive for {a.node!r} with a bad address")
            return
        port = a.port
        if not bootstrap and (port == 0 or self.config.protocol_version < 2):
            # handleAlive / readRemoteState: protocol 1 carried no port; use our BindPort
            port = self.config.bind_port or self.advertise[1]
        state = self._members.get(a.node)
        updates_node = False
        if not is_local and type(self._delegate) is not Delegate:
            if len(vsn) < 6:
                # memberlist refuses short version vectors when an Alive delegate is set
                self._drop("bad_version", f"alive for {a.node!r} without a full Vsn")
                return
            candidate = Member(
                a.node, host, port, a.meta, a.incarnation, State.ALIVE, now, vsn, a.addr
            )
            try:
                allowed = self._delegate.notify_alive(candidate)
            except Exception:
                log.exception("%s: delegate notify_alive failed", self.name)
                allowed = False
            if not allowed:
                self._drop("alive_filtered", f"alive for {a.node!r} refused by the delegate")
                return
        if state is None:
            if not self._ip_allowed(host):
                self._drop("cidr", f"alive for {a.node!r} at {host} outside cidrs_allowed")
                return
            # New nodes start dead and turn alive below, so the first alive is a join.
            state = Member(a.node, host, port, a.meta, 0, State.DEAD, now, vsn, a.addr)
            self._members[a.node] = state
            self._order.append(a.node)
            # Insert at a random position of the probe order (swap with a random index).
            n = len(self._order)
            j = self._rng.randrange(n)
            self._order[n - 1], self._order[j] = self._order[j], self._order[n - 1]
            fresh = True
        else:
            fresh = False
            if state.addr != host or state.port != port:
                if not self._ip_allowed(host):
                    self._drop("cidr", f"alive for {a.node!r} at {host} outside cidrs_allowed")
                    return
                reclaim = self.config.dead_node_reclaim_time
                can_reclaim = reclaim > 0 and now - state.state_change > reclaim
                if state.state == State.LEFT or (state.state == State.DEAD and can_reclaim):
                    updates_node = True
                else:
                    other = Member(
                        a.node, host, port, a.meta, a.incarnation, State.ALIVE, now, vsn, a.addr
                    )
                    self.stats["name_conflicts"] += 1
                    log.warning(
                        "%s: conflicting address for %s: %s:%d claims it, %s:%d has it",
                        self.name,
                        a.node,
                        host,
                        port,
                        state.addr,
                        state.port,
                    )
                    try:
                        self._delegate.notify_conflict(state, other)
                    except Exception:
                        log.exception("%s: delegate notify_conflict failed", self.name)
                    return
        # A fresh entry starts dead at incarnation 0, so (as in memberlist) an alive at
        # incarnation 0 leaves it dead; Go nodes never send one.
        if a.incarnation <= state.incarnation and not is_local and not updates_node:
            return
        if not fresh and a.incarnation < state.incarnation and is_local:
            return
        self._suspicions.pop(a.node, None)
        old_state, old_meta = state.state, state.meta
        if not bootstrap and is_local:
            if a.incarnation == state.incarnation and a.meta == state.meta and vsn == state.vsn:
                return
            self._refute(a.incarnation)
            return
        self._broadcast(a.node, a, notify)
        new_vsn = vsn if len(vsn) >= 6 else state.vsn
        new_state = State.ALIVE
        change = state.state_change if state.state == State.ALIVE else now
        m = Member(a.node, host, port, a.meta, a.incarnation, new_state, change, new_vsn, a.addr)
        self._members[a.node] = m
        if is_local:
            self._incarnation = max(self._incarnation, a.incarnation)
        if old_state in (State.DEAD, State.LEFT):
            self.failed.pop(a.node, None)
            self.left.pop(a.node, None)
            self._emit(EventKind.JOINED, m)
        else:
            if old_state == State.SUSPECT:
                self._emit(EventKind.REFUTED, m)
            if old_meta != a.meta:
                self._emit(EventKind.UPDATED, m)

    def _refute(self, accused: int) -> None:
        """Answer an accusation about ourselves with a higher incarnation (``refute``)."""
        inc = (self._incarnation + 1) & _U32
        if accused >= inc:
            inc = (accused + 1) & _U32
        self._incarnation = inc
        me = self._members[self.name]
        self._members[self.name] = Member(
            me.name, me.addr, me.port, me.meta, inc, State.ALIVE, me.state_change, me.vsn, me.ip
        )
        self._awareness.apply_delta(1)
        self.stats["refutations"] += 1
        # memberlist names this broadcast by our address string (a harmless quirk); we name
        # it by our node name so a newer refutation replaces an older one in the queue.
        self._broadcast(self.name, Alive(inc, me.name, me.ip, me.port, me.meta, me.vsn))

    def _suspect_node(self, s: Suspect, now: float) -> None:
        """memberlist ``suspectNode`` (LIFEGUARD §6.1)."""
        state = self._members.get(s.node)
        if state is None:
            self._drop("unknown_node", f"suspect about unknown node {s.node!r}")
            return
        if s.incarnation < state.incarnation:
            return
        timer = self._suspicions.get(s.node)
        if timer is not None:
            if timer.confirm(s.from_node, now):
                self.stats["suspicion_confirmations"] += 1
                self._broadcast(s.node, s)
                self._timer(("suspect", s.node), max(now, timer.deadline))
            return
        if state.state != State.ALIVE:
            return
        if s.node == self.name:
            self._refute(s.incarnation)
            return
        self._broadcast(s.node, s)
        self.stats["suspicions"] += 1
        m = Member(
            state.name,
            state.addr,
            state.port,
            state.meta,
            s.incarnation,
            State.SUSPECT,
            now,
            state.vsn,
            state.ip,
        )
        self._members[s.node] = m
        n = self.num_nodes
        c = self.config
        k = expected_confirmations(c.suspicion_mult, n)
        lo = suspicion_timeout(c.suspicion_mult, n, c.probe_interval)
        hi = c.suspicion_max_timeout_mult * lo
        sus = Suspicion(s.from_node, k, lo, hi, now)
        self._suspicions[s.node] = sus
        self._timer(("suspect", s.node), sus.deadline)
        self._emit(EventKind.SUSPECT, m)

    def _suspicion_fired(self, name: str, now: float) -> None:
        sus = self._suspicions.get(name)
        if sus is None or sus.deadline > now:
            return  # stale timer: cleared, or shortened/replaced by a later one
        m = self._members.get(name)
        if m is None or m.state != State.SUSPECT:
            self._suspicions.pop(name, None)
            return
        log.info(
            "%s: marking %s as failed, suspect timeout reached (%d peer confirmations)",
            self.name,
            name,
            sus.confirmations,
        )
        self._dead_node(Dead(m.incarnation, name, self.name), now)

    def _dead_node(self, d: Dead, now: float, notify: int | None = None) -> None:
        """memberlist ``deadNode`` (LIFEGUARD §6.3)."""
        state = self._members.get(d.node)
        if state is None:
            self._drop("unknown_node", f"dead about unknown node {d.node!r}")
            return
        if d.incarnation < state.incarnation:
            return
        self._suspicions.pop(d.node, None)
        if state.state in (State.DEAD, State.LEFT):
            return
        if d.node == self.name:
            if not self._leaving:
                self._refute(d.incarnation)
                return
            self._broadcast(d.node, d, notify)
        else:
            self._broadcast(d.node, d)
        new = State.LEFT if d.node == d.from_node else State.DEAD
        m = Member(
            state.name,
            state.addr,
            state.port,
            state.meta,
            d.incarnation,
            new,
            now,
            state.vsn,
            state.ip,
        )
        self._members[d.node] = m
        if d.node == self.name:
            return
        if new == State.LEFT:
            self.left[d.node] = (m, now)
            self.failed.pop(d.node, None)
            self._emit(EventKind.LEFT, m)
        else:
            self.failed[d.node] = (m, now)
            self._emit(EventKind.DEAD, m)

    # ------------------------------------------------------------------ push/pull

    def _local_state(self, join: bool) -> PushPull | MemberSnapshot:
        try:
            user = bytes(self._delegate.local_state(join))
        except Exception:
            log.exception("%s: delegate local_state failed", self.name)
            user = b""
        members = self._members
        if not self._encode:
            return MemberSnapshot(join, tuple([members[n] for n in self._order]), user)
        nodes = tuple(
            PushNodeState(m.name, m.ip, m.port, m.meta, m.incarnation, int(m.state), m.vsn)
            for m in (members[n] for n in self._order)
        )
        return PushPull(join, nodes, user)

    def _push_pull(self, now: float) -> None:
        peers = self._k_random(1, lambda m: m.name != self.name and m.state == State.ALIVE)
        if not peers:
            return
        self.stats["push_pulls"] += 1
        self._open_stream(
            "push_pull",
            0,
            peers[0].address,
            self._local_state(False),
            self.config.tcp_timeout,
            True,
        )

    def _join(self, addresses: Sequence[Address], token: int, now: float, report: bool) -> None:
        j = _Join(report=report)
        self._joins[token] = j
        for addr in addresses:
            sid = self._open_stream(
                "join", token, addr, self._local_state(True), self.config.tcp_timeout, True
            )
            j.pending.add(sid)
        self._maybe_finish_join(token)

    def _maybe_finish_join(self, token: int) -> None:
        j = self._joins.get(token)
        if j is None or j.pending:
            return
        del self._joins[token]
        if j.report:
            self._out.append(JoinCompleted(token, j.contacted, tuple(j.errors)))

    def _verify_protocol(self, remote: Sequence[PushNodeState | Member]) -> str | None:
        """memberlist ``verifyProtocol``: None if compatible, else the reason.

        As in Go, alive entries without versions are left out of the ranges, and every
        entry is then checked with missing versions read as 0. Works on the distinct
        version vectors, so thousands of members with a few versions cost little.
        """
        alive = State.ALIVE
        local = self._members.values()
        alive_vsns = {m.vsn for m in local if m.state == alive and m.vsn}
        alive_vsns.update(r.vsn for r in remote if r.state == alive and r.vsn)
        if not alive_vsns:
            return None
        padded = [_vsn6(v) for v in alive_vsns]
        maxpmin = max(v[0] for v in padded)
        minpmax = min(v[1] for v in padded)
        maxdmin = max(v[3] for v in padded)
        mindmax = min(v[4] for v in padded)
        every = {r.vsn for r in remote}
        every.update(m.vsn for m in local)
        for raw in every:
            v = _vsn6(raw)
            bad = None
            if not maxpmin <= v[2] <= minpmax:
                bad = f"protocol version ({v[2]}) is incompatible: [{maxpmin}, {minpmax}]"
            elif not maxdmin <= v[5] <= mindmax:
                bad = f"delegate protocol version ({v[5]}) is incompatible: [{maxdmin}, {mindmax}]"
            if bad is not None:
                who = next((x.name for x in [*remote, *local] if x.vsn == raw), "?")
                return f"node {who!r} {bad}"
        return None

    def _merge_remote(self, pp: PushPull | MemberSnapshot, join: bool, now: float) -> str | None:
        """``mergeRemoteState``: verify versions, consult the merge delegate, merge."""
        nodes: Sequence[PushNodeState | Member] = (
            pp.members if isinstance(pp, MemberSnapshot) else pp.nodes
        )
        err = self._verify_protocol(nodes)
        if err is not None:
            self.stats["push_pull_rejected_version"] += 1
            log.warning("%s: failed push/pull merge: %s", self.name, err)
            return err
        if join and type(self._delegate) is not Delegate:
            peers = []
            for r in nodes:
                if isinstance(r, Member):
                    peers.append(r)
                    continue
                host = self._ip_str(r.addr)
                if host is not None:
                    peers.append(Member(r.name, host, r.port, r.meta, r.incarnation,
                                        _state_or_dead(r.state), now, r.vsn, r.addr))
            try:
                allowed = self._delegate.notify_merge(peers)
            except Exception:
                log.exception("%s: delegate notify_merge failed", self.name)
                allowed = False
            if not allowed:
                self.stats["push_pull_vetoed"] += 1
                return "merge canceled by the delegate"
        self._merge_state(nodes, now)
        if pp.user_state:
            try:
                self._delegate.merge_remote_state(pp.user_state, join)
            except Exception:
                log.exception("%s: delegate merge_remote_state failed", self.name)
        return None

    def _merge_state(self, remote: Sequence[PushNodeState | Member], now: float) -> None:
        """memberlist ``mergeState`` (LIFEGUARD §8.2): never trust a remote 'dead'."""
        members = self._members
        me = self.name
        for r in remote:
            st = r.state
            raw = r.ip if isinstance(r, Member) else r.addr
            if st == State.ALIVE:
                cur = members.get(r.name)
                if (
                    cur is not None
                    and r.incarnation <= cur.incarnation
                    and cur.port == r.port
                    and cur.ip == raw
                    and r.name != me
                ):
                    continue  # fast path: aliveNode would ignore it
                self._alive_node(Alive(r.incarnation, r.name, raw, r.port, r.meta, r.vsn), now)
            elif st == State.LEFT:
                self._dead_node(Dead(r.incarnation, r.name, r.name), now)
            elif st in (State.DEAD, State.SUSPECT):
                self._suspect_node(Suspect(r.incarnation, r.name, me), now)
            else:
                self._drop("malformed", f"push/pull entry {r.name!r} with state {st}")

    # ------------------------------------------------------------------ streams

    def _parse_stream(
        self, data: bytes | None, message: StreamPayload | None, expect_label: bool
    ) -> StreamPayload:
        if data is None:
            if message is None:
                raise WireError("empty stream", reason="empty")
            return message
        self.stats["bytes_received"] += len(data)
        return parse_stream_untrusted(data, self.wire, expect_label=expect_label)

    def _on_stream(self, s: StreamReceived, now: float) -> None:
        self.stats["streams_received"] += 1
        if not self._ip_allowed(s.source[0]):
            self._drop("cidr", f"stream from {s.source[0]} outside cidrs_allowed")
            self._out.append(CloseStream(s.stream_id))
            return
        try:
            msg = self._parse_stream(s.data, s.message, expect_label=True)
        except WireError as exc:
            self._drop(exc.reason, f"stream from {s.source}: {exc}")
            log.warning("%s: failed to receive stream from %s: %s", self.name, s.source, exc)
            self._reply_stream(s.stream_id, Err(str(exc)))
            return
        if isinstance(msg, PushPull | MemberSnapshot):
            self._reply_stream(s.stream_id, self._local_state(msg.join))
            self._merge_remote(msg, msg.join, now)
        elif isinstance(msg, Ping):
            if msg.node and msg.node != self.name:
                self._drop("wrong_node", f"TCP ping for {msg.node!r}")
                self._out.append(CloseStream(s.stream_id))
                return
            self._reply_stream(s.stream_id, Ack(msg.seq_no))
        elif isinstance(msg, UserStream):
            self._deliver_user(msg.payload, True, s.source)
            self._out.append(CloseStream(s.stream_id))
        else:
            self._drop("unexpected", f"{type(msg).__name__} opening a stream")
            self._out.append(CloseStream(s.stream_id))

    def _on_stream_response(self, r: StreamResponse, now: float) -> None:
        entry = self._streams.pop(r.stream_id, None)
        if entry is None:
            return
        purpose, ref = entry
        if purpose == "user":
            return
        try:
            msg = self._parse_stream(r.data, r.message, expect_label=False)
        except WireError as exc:
            self._drop(exc.reason, f"stream reply: {exc}")
            self._stream_error(purpose, ref, r.stream_id, str(exc))
            return
        if isinstance(msg, Err):
            self._stream_error(purpose, ref, r.stream_id, f"remote error: {msg.error}")
            return
        if purpose == "fallback":
            p = self._probe
            if isinstance(msg, Ack) and p is not None and p.seq == ref and msg.seq_no == ref:
                p.fallback_ok = True
            return
        if not isinstance(msg, PushPull | MemberSnapshot):
            self._stream_error(purpose, ref, r.stream_id, "reply is not a push/pull")
            return
        err = self._merge_remote(msg, purpose != "push_pull", now)
        if purpose == "join":
            j = self._joins.get(ref)
            if j is not None:
                j.pending.discard(r.stream_id)
                if err is None:
                    j.contacted += 1
                else:
                    j.errors.append(err)
                self._maybe_finish_join(ref)

    def _on_stream_failed(self, sid: int, reason: str, now: float) -> None:
        entry = self._streams.pop(sid, None)
        if entry is None:
            return
        self._stream_error(entry[0], entry[1], sid, reason)

    def _stream_error(self, purpose: str, ref: int, sid: int, reason: str) -> None:
        self.stats[f"stream_errors_{purpose}"] += 1
        log.debug("%s: %s stream failed: %s", self.name, purpose, reason)
        if purpose == "join":
            j = self._joins.get(ref)
            if j is not None:
                j.pending.discard(sid)
                j.errors.append(reason)
                self._maybe_finish_join(ref)

    # ------------------------------------------------------------------ requests

    def _wait_for(self, kind: str, token: int, timeout: float, now: float) -> int:
        self._notify_seq += 1
        nid = self._notify_seq
        self._waiting[nid] = (kind, token)
        self._timer(("wait_timeout", nid), now + timeout)
        return nid

    def _complete_wait(self, waiting: tuple[str, int]) -> None:
        kind, token = waiting
        if kind == "leave":
            self._out.append(LeaveCompleted(token))
        else:
            self._out.append(MetaUpdateCompleted(token))

    def _any_alive_peer(self) -> bool:
        """memberlist ``anyAlive``: a peer that is neither dead nor left (suspect counts)."""
        return any(
            m.state in (State.ALIVE, State.SUSPECT) and m.name != self.name
            for m in self._members.values()
        )

    def _leave(self, req: LeaveRequested, now: float) -> None:
        if self._leaving:
            self._out.append(LeaveCompleted(req.token))
            return
        self._leaving = True
        me = self._members[self.name]
        if not self._any_alive_peer():
            self._dead_node(Dead(me.incarnation, self.name, self.name), now)
            self._out.append(LeaveCompleted(req.token))
            return
        nid = self._wait_for("leave", req.token, req.timeout, now)
        self._dead_node(Dead(me.incarnation, self.name, self.name), now, notify=nid)

    def _update_meta(self, req: MetaUpdateRequested, now: float) -> None:
        if len(req.meta) > self.config.meta_max_size:
            raise ValueError(
                f"meta is {len(req.meta)} bytes, more than meta_max_size="
                f"{self.config.meta_max_size}"
            )
        self._meta = bytes(req.meta)
        self._incarnation = (self._incarnation + 1) & _U32
        me = self._members[self.name]
        nid = None
        if self._any_alive_peer():
            nid = self._wait_for("meta", req.token, req.timeout, now)
        self._alive_node(
            Alive(self._incarnation, self.name, me.ip, me.port, self._meta, me.vsn),
            now,
            bootstrap=True,
            notify=nid,
        )
        if nid is None:
            self._out.append(MetaUpdateCompleted(req.token))

    def _send_user(self, req: UserMessageRequested, now: float) -> None:
        m = self._members.get(req.to)
        if m is None:
            raise KeyError(f"no member named {req.to!r}")
        if req.reliable:
            self._open_stream(
                "user", 0, m.address, UserStream(bytes(req.payload)), self.config.tcp_timeout, False
            )
            return
        msg = UserMsg(bytes(req.payload))
        raw, n = self._part(msg)
        self._send(m.address, [msg], [raw], [n], crc=m.pmax >= 5)

    # ------------------------------------------------------------------ Serf retention

    def _reap(self, now: float) -> None:
        c = self.config
        for store, timeout in (
            (self.failed, c.reconnect_timeout),
            (self.left, c.tombstone_timeout),
        ):
            for name, (m, since) in list(store.items()):
                if now - since > timeout:
                    del store[name]
                    self.stats["reaped"] += 1
                    self._emit(EventKind.REAPED, m)

    def _reconnect(self, now: float) -> None:
        """Serf ``reconnect``: on average one attempt per failed member per interval
        across the cluster: probability = failed / alive."""
        if not self.failed or self._leaving:
            return
        n_failed = len(self.failed)
        # alive or suspect = table size minus the dead/left entries still in it; those
        # are all retained in failed/left, so this costs O(failed + left), not O(n).
        table = self._members
        gone = sum(1 for name in self.failed if name in table)
        gone += sum(1 for name in self.left if name in table)
        n_alive = len(table) - gone
        prob = n_failed / max(1, n_alive)
        if self._rng.random() > prob:
            return
        names = sorted(self.failed)
        m, _ = self.failed[names[self._rng.randrange(len(names))]]
        self.stats["reconnect_attempts"] += 1
        self._join([m.address], -1, now, report=False)

    def _rejoin(self, now: float) -> None:
        addrs = []
        for seed in self.config.seeds:
            host, _, port = seed.rpartition(":")
            if host and port.isdigit():
                addrs.append((host.strip("[]"), int(port)))
        if addrs and not self._leaving:
            self.stats["rejoin_attempts"] += 1
            self._join(addrs, -2, now, report=False)

    # ------------------------------------------------------------------ converged start
    # (Added for swimpy.sim; kept at the end of the class on purpose.)

    def bootstrap_members(self, records: Iterable[Member]) -> None:
        """Pre-fill the member table as if the cluster had already converged.

        Call once, before :meth:`start`. ``records`` are immutable :class:`Member` records
        (normally alive at incarnation 1) and may be shared with other nodes' tables; our
        own name is skipped, since :meth:`start` makes our own record. The probe order is
        shuffled with this node's ``rng`` so that members do not all probe in step. No
        events are emitted and nothing is broadcast: this is the state a long-running
        cluster would be in, not a join. The simulator uses it to start large clusters.
        """
        if self._started:
            raise RuntimeError("bootstrap_members() must be called before start()")
        me = self.name
        recs = [m for m in records if m.name != me]
        names = [m.name for m in recs]
        members = self._members
        before = len(members)
        members.update(zip(names, recs, strict=True))
        if len(members) != before + len(names):
            raise ValueError(
                "bootstrap_members: a member name is listed twice (or was already in the "
                "table); list each member once and call this once, before start()"
            )
        self._order.extend(names)
        self._rng.shuffle(self._order)


def _payload_size(msg: StreamPayload) -> int:
    """Uncompressed encoded size of a stream payload, without encoding a snapshot."""
    if not isinstance(msg, MemberSnapshot):
        return len(encode_stream_message(msg))
    n_user = len(msg.user_state)
    return (
        push_pull_header_size(len(msg.members), n_user)
        + n_user
        + sum([m.wire_size for m in msg.members])
    )


def _vsn6(v: bytes) -> bytes:
    """A version vector padded with zeros to its six entries (missing = 0, as in Go)."""
    return v if len(v) >= 6 else v + bytes(6 - len(v))


def _state_or_dead(v: int) -> State:
    try:
        return State(v)
    except ValueError:
        return State.DEAD
