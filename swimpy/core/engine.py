"""The SWIM + Lifeguard engine: one member of one pool, as a sans-IO state machine.

``Engine.handle(input, now)`` takes network input or a timer with the current time
(``Engine.timer_fired(timer, now)`` and ``Engine.packet_received(source, data, now)`` are
the same for the two inputs nearly every call is, without building the input object);
``Engine.submit(request, now)`` takes the local caller's requests and returns the id the
engine gave the request with the actions. All return the actions to carry out. The
engine never reads a clock, opens a socket or uses global randomness, so the trio runtime
and the simulator drive the very same code.

This file only wires the mechanisms together and dispatches; each mechanism lives in the
file named after it:

* ``members.py``: the table and the alive/suspect/dead merge rules;
* ``probe.py``: probing (direct, indirect, TCP fallback) and relays for others;
* ``gossip.py`` and ``queue.py``: dissemination and piggybacking;
* ``pushpull.py``: anti-entropy and joins;
* ``retention.py``: Serf's failed/left retention, reaping and reconnects;
* ``net.py`` and ``codec.py``: packets and streams in and out, the codec seam, keys;
* ``delegate.py``: the optional hooks; ``outbox.py``: where every mechanism writes.

The algorithms follow hashicorp/memberlist v0.2.2 (state.go, net.go, suspicion.go,
awareness.go, queue.go); see ``shared/spec/LIFEGUARD.md``. Where upstream changed
behaviour without changing bytes we follow upstream, marked ``[UPSTREAM]``.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Iterable

from swimpy.core.actions import (
    Action,
    LeaveCompleted,
    MetaUpdateCompleted,
    RequestFailed,
    UserMessageReceived,
    UserMessageSent,
)
from swimpy.core.addresses import AddressFilter
from swimpy.core.codec import Codec, WireCodec
from swimpy.core.delegate import Delegate, Hooks
from swimpy.core.gossip import CRC_MIN_PROTOCOL, Gossip
from swimpy.core.inputs import (
    BroadcastRequested,
    ConnectionClosed,
    ConnId,
    GossipVerifyRequested,
    Input,
    InstallKeyRequested,
    JoinRequested,
    LeaveRequested,
    MetaUpdateRequested,
    PacketReceived,
    RemoveKeyRequested,
    Request,
    StreamFailed,
    StreamReceived,
    StreamResponse,
    StreamSent,
    TimerFired,
    UseKeyRequested,
    UserMessageRequested,
)
from swimpy.core.lifeguard import Awareness
from swimpy.core.member import Address, Member, State
from swimpy.core.members import Members
from swimpy.core.net import Completed, Net, Purpose
from swimpy.core.outbox import Outbox
from swimpy.core.probe import Prober
from swimpy.core.pushpull import PushPullSync
from swimpy.core.retention import Retention
from swimpy.core.snapshot import Membership, Statistics
from swimpy.core.table import MemberBase
from swimpy.core.timers import (
    GossipTick,
    ProbeEnd,
    ProbeTick,
    ProbeTimeout,
    PushPullTick,
    ReapTick,
    ReconnectTick,
    RelayEnd,
    RequestTimeout,
    SuspicionTimeout,
    Timer,
)
from swimpy.profiles import Config, ConfigError
from swimpy.wire.crypto import validate_key
from swimpy.wire.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Nack,
    PacketMessage,
    Ping,
    Suspect,
    UserMsg,
)
from swimpy.wire.packet import NonceSource
from swimpy.wire.stream import PushPull, StreamMessage, UserStream

log = logging.getLogger("swimpy.core")


class Engine:
    """One member of one memberlist pool.

    ``advertise`` is the concrete (ip, port) peers reach us at; the runtime resolves
    wildcard bind addresses and port 0 before creating the engine. ``rng`` is the only
    source of randomness. ``nonce_source`` makes AES-GCM nonces (``os.urandom`` in
    production; a seeded generator only in tests and simulation); it is always needed,
    since keys can be installed at run time. ``codec`` is :class:`WireCodec` (bytes) by
    default; the simulator passes an ``ObjectCodec``.

    Owner-thread only: every method belongs to the thread or task that drives the engine.
    Other threads read :meth:`snapshot` and :meth:`statistics` results the owner made.
    """

    def __init__(
        self,
        config: Config,
        *,
        advertise: Address,
        rng: random.Random,
        nonce_source: NonceSource,
        codec: Codec | None = None,
        meta: bytes = b"",
        delegate: object | None = None,
    ) -> None:
        if not config.name:
            raise ConfigError("name", "the node needs a name (Config.name is empty)")
        if len(meta) > config.meta_max_size:
            raise ConfigError(
                "meta", f"meta is {len(meta)} bytes, more than meta_max_size={config.meta_max_size}"
            )
        try:
            ip = ipaddress.ip_address(advertise[0])
        except ValueError:
            raise ConfigError(
                "advertise_addr", f"{advertise[0]!r} is not an IP address to advertise"
            ) from None
        if not 0 < advertise[1] <= 0xFFFF:
            raise ConfigError("advertise_port", f"{advertise[1]} is not a usable port")
        if not callable(nonce_source):
            raise ConfigError("nonce_source", "pass a nonce source such as os.urandom")
        self.config = config
        self.name = config.name
        self.advertise: Address = (str(ip), advertise[1])
        self._ip = ip.packed
        self._rng = rng
        self._meta = bytes(meta)
        self._out = Outbox(config.name)
        self._hooks = Hooks(delegate, config.name)
        addresses = AddressFilter(config.cidrs_allowed)
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._net = Net(config, self._out, codec or WireCodec(), nonce_source, addresses)
        self._gossip = Gossip(config, self._out, self._net, self._hooks)
        self._retention = Retention(config, self._out, rng)
        self._members = Members(config, self._out, rng, self._hooks, self._awareness,
                                self._gossip, self._retention, addresses, advertise[1])
        self._gossip.members = self._members
        self._prober = Prober(config, self._out, rng, self._members, self._gossip, self._net,
                              self._awareness, self._hooks, self._ip, advertise[1])
        self._pushpull = PushPullSync(config, self._out, self._members, self._net, self._hooks)
        self._request_seq = 0
        #: leave / meta update requests waiting for their broadcast: id -> kind
        self._waiting: dict[int, str] = {}
        self._started = False
        self._shutdown = False
        #: started and not shut down (tested first thing on every input)
        self._live = False
        #: the broadcast queue's finished notify tokens (the same list object, tested
        #: after every input)
        self._finished = self._gossip.queue.finished
        self._snapshot: Membership | None = None

    # ------------------------------------------------------------------ queries (owner)

    @property
    def incarnation(self) -> int:
        return self._members.incarnation

    @property
    def health_score(self) -> int:
        return self._awareness.score

    @property
    def num_nodes(self) -> int:
        """memberlist's ``numNodes``: every entry of the table, self, dead and left included."""
        return self._members.num_nodes

    @property
    def leaving(self) -> bool:
        return self._members.leaving

    @property
    def stats(self) -> dict[str, int]:
        """The live counters (owner only; see :meth:`statistics` for a snapshot)."""
        return self._out.stats

    @property
    def failed(self) -> dict[str, tuple[Member, float]]:
        """Serf's retained failed members: name -> (record, since)."""
        return self._retention.failed_members

    @property
    def left(self) -> dict[str, tuple[Member, float]]:
        """Serf's retained left members (tombstones): name -> (record, since)."""
        return self._retention.left_members

    def member(self, name: str) -> Member | None:
        return self._members.table.get(name)

    def members(self) -> list[Member]:
        """Members that are alive or suspect (memberlist ``Members()``), self included."""
        return [m for m in self._members.table.values()
                if m.state in (State.ALIVE, State.SUSPECT)]

    def table(self) -> dict[str, Member]:
        """A copy of the whole member table (including dead and left entries)."""
        return dict(self._members.table.items())

    def all_members(self) -> list[Member]:
        """Serf's view: the table plus failed and left members still retained."""
        out = dict(self._members.table.items())
        for name, (m, _) in self._retention.failed_members.items():
            out.setdefault(name, m)
        for name, (m, _) in self._retention.left_members.items():
            out.setdefault(name, m)
        return list(out.values())

    def keys(self) -> tuple[bytes, ...]:
        """Installed encryption keys, primary first (empty: no encryption)."""
        return self._net.installed_keys()

    @property
    def verify(self) -> tuple[bool, bool]:
        """The current ``(gossip_verify_incoming, gossip_verify_outgoing)``."""
        wire = self._net.wire
        return (wire.verify_incoming, wire.verify_outgoing)

    def snapshot(self) -> Membership:
        """An immutable view of the membership that any thread may read. Rebuilt only
        when the table or the retained members changed since the last call."""
        version = self._members.version * 1_000_003 + self._retention.version
        snap = self._snapshot
        if snap is None or snap.version != version:
            retained = {n: m for n, (m, _) in self._retention.failed_members.items()}
            retained.update((n, m) for n, (m, _) in self._retention.left_members.items())
            snap = Membership.build(version, self._members.table, retained)
            self._snapshot = snap
        return snap

    def statistics(self) -> Statistics:
        counts = [0, 0, 0, 0]
        for m in self._members.table.values():
            counts[m.state] += 1
        return Statistics(
            members=self._members.num_nodes,
            alive=counts[State.ALIVE],
            suspect=counts[State.SUSPECT],
            dead=counts[State.DEAD],
            left=counts[State.LEFT],
            queue_depth=len(self._gossip.queue),
            health_score=self._awareness.score,
            incarnation=self._members.incarnation,
            counters=self._counters(),
        )

    def _counters(self) -> dict[str, int]:
        counters = dict(self._out.stats)
        if self._members.alive_duplicates:
            counters["alive_duplicates"] = self._members.alive_duplicates
        return counters

    # ------------------------------------------------------------------ lifecycle

    def bootstrap_members(self, records: Iterable[Member] | MemberBase) -> None:
        """Pre-fill the member table as if the cluster had already converged.

        Call once, before :meth:`start`. ``records`` are immutable :class:`Member` records
        (normally alive at incarnation 1); our own name is skipped, since :meth:`start`
        makes our own record. Pass a :class:`MemberBase` to share the records *and* their
        index with other engines' tables: each engine then keeps only what it changes
        (memory per engine independent of the cluster size; an iterable of records makes
        a private copy). The probe order is drawn with this engine's ``rng`` as it goes.
        No events are emitted and nothing is broadcast: this is the state a long-running
        cluster would be in, not a join. The simulator uses it to start large clusters.
        """
        if self._started:
            raise RuntimeError("bootstrap_members() must be called before start()")
        self._members.bootstrap(records)

    def start(self, now: float) -> list[Action]:
        """Set our own alive state and the periodic timers (memberlist ``Create``)."""
        if self._started:
            raise RuntimeError("engine already started")
        self._started = True
        self._live = True
        self._gossip.now = now
        self._out.now = now
        self._members.incarnation = 1
        self._members.alive_node(
            Alive(1, self.name, self._ip, self.advertise[1], self._meta, self.config.vsn),
            now,
            bootstrap=True,
        )
        c = self.config
        stagger = self._stagger
        self._prober.start(now, stagger(c.probe_interval))
        if c.gossip_interval > 0 and c.gossip_nodes > 0:
            self._gossip.start(now, stagger(c.gossip_interval))
        if c.push_pull_interval > 0:
            self._pushpull.start(now, stagger(c.push_pull_interval))
        reap = stagger(c.reap_interval)
        self._retention.start(now, reap, stagger(c.reconnect_interval))
        return self._flush()

    def shutdown(self) -> None:
        """Stop taking part: every later input is ignored (peers will see us fail)."""
        self._shutdown = True
        self._live = False

    def _stagger(self, interval: float) -> float:
        return self._rng.random() * interval

    # ------------------------------------------------------------------ network and timers

    def handle(self, inp: Input, now: float) -> list[Action]:
        """Handle network input or a timer at time ``now``; never raises for anything a
        peer sent."""
        # Timers and packets are nearly every input: test them by exact type first
        # (cheaper than the match below, which handles everything else).
        tp = type(inp)
        if tp is TimerFired:
            return self.timer_fired(inp.timer, now)  # type: ignore[attr-defined]
        if tp is PacketReceived:
            return self.packet_received(inp.source, inp.data, now)  # type: ignore[attr-defined]
        if not self._live:
            return self._not_live("handle")
        self._gossip.now = now
        self._out.now = now
        net = self._net
        match inp:
            case PacketReceived():  # a subclass (the exact type was handled above)
                return self.packet_received(inp.source, inp.data, now)
            case TimerFired():
                return self.timer_fired(inp.timer, now)
            case StreamReceived():
                request = net.inbound(inp)
                if request is not None:
                    self._on_stream_request(inp.conn_id, inp.source, request, now)
            case StreamResponse():
                done = net.reply_in(inp)
                if done is not None:
                    self._completed(done, now)
            case StreamSent():
                done = net.sent(inp)
                if done is not None:
                    self._completed(done, now)
            case StreamFailed():
                done = net.failed(inp)
                if done is not None:
                    self._completed(done, now)
            case ConnectionClosed():
                net.inbound_closed(inp)
            case Request():
                raise TypeError(f"{type(inp).__name__} is a request: use Engine.submit")
            case _:
                raise TypeError(f"not an engine input: {inp!r}")
        return self._flush()

    # The two entry points below are ``handle(TimerFired(timer), now)`` and
    # ``handle(PacketReceived(source, data), now)`` without the input objects: a cluster
    # member takes a few timers and datagrams per second and little else, so a driver
    # that keeps timers in a heap and reads datagrams off a socket (the simulator, the
    # runtime) saves building and dispatching one object per input.

    def timer_fired(self, timer: Timer, now: float) -> list[Action]:
        """Timer ``timer`` (set with ``SetTimer``) is due at time ``now``: the same as
        ``handle(TimerFired(timer), now)``."""
        if not self._live:
            return self._not_live("timer_fired")
        self._gossip.now = now
        self._out.now = now
        # the probe timers fire once per probe interval per member, the gossip ticker
        # several times per second while there is news: exact-type tests first
        tp = type(timer)
        if tp is ProbeTick:
            self._prober.tick(now)
        elif tp is ProbeTimeout:
            self._prober.timeout(timer.seq, now)  # type: ignore[attr-defined]
        elif tp is GossipTick:
            self._gossip.tick(now)
        else:
            self._on_timer(timer, now)
        out = self._out
        actions = out.actions
        out.actions = []
        if self._finished:
            self._take_finished(actions)
        return actions

    def packet_received(self, source: Address, data: object, now: float) -> list[Action]:
        """A datagram ``data`` arrived from ``source`` at time ``now``: the same as
        ``handle(PacketReceived(source, data), now)``; never raises for what it holds."""
        if not self._live:
            return self._not_live("packet_received")
        self._gossip.now = now
        out = self._out
        out.now = now
        msgs = self._net.packet_in(source, data)
        if msgs:
            for msg in msgs:
                # alives dominate a forming cluster, pings and acks a formed one,
                # suspects and deads the news of a failure: skip the dispatch for them
                tp = type(msg)
                if tp is Ack:
                    self._prober.on_ack(msg, now)  # type: ignore[arg-type]
                elif tp is Ping:
                    self._prober.on_ping(msg, source)  # type: ignore[arg-type]
                elif tp is Alive:
                    self._members.on_alive(msg, now)  # type: ignore[arg-type]
                elif tp is Suspect:
                    self._members.suspect_node(msg, now)  # type: ignore[arg-type]
                elif tp is Dead:
                    self._members.dead_node(msg, now)  # type: ignore[arg-type]
                else:
                    self._on_message(msg, source, now)
        actions = out.actions
        out.actions = []
        if self._finished:
            self._take_finished(actions)
        return actions

    def _not_live(self, what: str) -> list[Action]:
        if not self._started:
            raise RuntimeError(f"call Engine.start(now) before {what}()")
        return []  # shut down: every input is ignored

    def _flush(self) -> list[Action]:
        out = self._out
        actions = out.actions
        out.actions = []
        if self._finished:
            self._take_finished(actions)
        return actions

    def _take_finished(self, actions: list[Action]) -> None:
        """Complete the requests whose broadcasts finished (a leave, a metadata update),
        appending their completions to ``actions``."""
        out = self._out
        out.actions = actions
        for request_id in self._gossip.queue.take_finished():
            self._complete_wait(request_id)
        out.actions = []

    def _on_timer(self, timer: Timer, now: float) -> None:
        match timer:
            case ProbeTick():
                self._prober.tick(now)
            case GossipTick():
                self._gossip.tick(now)
            case ProbeTimeout(seq=seq):
                self._prober.timeout(seq, now)
            case ProbeEnd(seq=seq):
                self._prober.end(seq, now)
            case RelayEnd(seq=seq):
                self._prober.relay_end(seq)
            case SuspicionTimeout():
                self._members.suspicion_due(timer, now)
            case PushPullTick():
                self._pushpull.tick(now)
            case ReapTick():
                self._retention.reap(now)
            case ReconnectTick():
                m = self._retention.reconnect_target(now, self._members.table,
                                                     self._members.leaving)
                if m is not None:
                    self._pushpull.join([m.address], None)
            case RequestTimeout(request_id=rid):
                self._complete_wait(rid)
            case _:
                self._out.drop("unknown_timer", f"{timer!r}")

    def _on_message(self, msg: PacketMessage, source: Address, now: float) -> None:
        match msg:
            case Ping():
                self._prober.on_ping(msg, source)
            case Ack():
                self._prober.on_ack(msg, now)
            case Alive():
                self._members.on_alive(msg, now)
            case Suspect():
                self._members.suspect_node(msg, now)
            case Dead():
                self._members.dead_node(msg, now)
            case IndirectPing():
                self._prober.on_indirect_ping(msg, source, now)
            case Nack():
                self._prober.on_nack(msg)
            case UserMsg():
                self._deliver_user(msg.payload, False, source)
            case _:
                self._out.drop("unexpected", f"{type(msg).__name__} over UDP")

    def _on_stream_request(self, conn: ConnId, source: Address, msg: StreamMessage,
                           now: float) -> None:
        match msg:
            case PushPull():
                self._pushpull.on_request(conn, msg, now)
            case Ping():
                ack = self._prober.tcp_ping_reply(msg)
                if ack is None:
                    self._net.close(conn)
                else:
                    self._net.reply(conn, ack)
            case UserStream():
                self._deliver_user(msg.payload, True, source)
                self._net.close(conn)
            case _:
                self._out.drop("unexpected", f"{type(msg).__name__} opening a stream")
                self._net.close(conn)

    def _completed(self, done: Completed, now: float) -> None:
        if done.purpose is Purpose.FALLBACK:
            self._prober.fallback_reply(done.ref, done.message)
        elif done.purpose is Purpose.USER:
            self._out.actions.append(UserMessageSent(done.ref, done.error))
        else:
            self._pushpull.completed(done, now)

    def _deliver_user(self, payload: bytes, reliable: bool, source: Address) -> None:
        self._out.stats["user_messages_received"] += 1
        self._out.actions.append(UserMessageReceived(payload, reliable, source))

    # ------------------------------------------------------------------ requests

    def check(self, req: Request) -> None:
        """Raise (``ValueError``, ``KeyError``, ``TypeError``) if ``req`` is misuse: call
        it where the caller can see the error, before the request reaches the owner."""
        match req:
            case JoinRequested(addresses=addrs):
                if not addrs:
                    raise ValueError("join needs at least one address")
                for a in addrs:
                    _check_address(a)
            case LeaveRequested(timeout=t) | MetaUpdateRequested(timeout=t) if t <= 0:
                raise ValueError(f"timeout must be positive, not {t!r}")
            case MetaUpdateRequested(meta=meta) if len(meta) > self.config.meta_max_size:
                raise ValueError(
                    f"meta is {len(meta)} bytes, more than meta_max_size="
                    f"{self.config.meta_max_size}"
                )
            case UserMessageRequested(to=to) if to not in self._members.table:
                raise KeyError(f"no member named {to!r}")
            case InstallKeyRequested(key=key):
                validate_key(key)
            case UseKeyRequested(key=key) if key not in self._net.installed_keys():
                raise ValueError("that key is not installed: install it first")
            case RemoveKeyRequested(key=key):
                keys = self._net.installed_keys()
                if keys and key == keys[0]:
                    raise ValueError("removing the primary key is not allowed; use another first")
            case Request():
                pass
            case _:
                raise TypeError(f"not a request: {req!r}")

    def submit(self, req: Request, now: float) -> tuple[int, list[Action]]:
        """Carry out a request; returns the id its completion action will carry, and the
        actions. Misuse raises (see :meth:`check`) before anything changes."""
        if not self._started:
            raise RuntimeError("call Engine.start(now) before submit()")
        self.check(req)
        self._request_seq += 1
        rid = self._request_seq
        if self._shutdown:
            return rid, []
        self._gossip.now = now
        self._out.now = now
        try:
            self._carry_out(rid, req, now)
        except (KeyError, ValueError) as exc:
            self._out.actions.append(RequestFailed(rid, str(exc)))
        return rid, self._flush()

    def _carry_out(self, rid: int, req: Request, now: float) -> None:
        match req:
            case JoinRequested(addresses=addrs):
                self._pushpull.join(addrs, rid)
            case LeaveRequested():
                self._leave(rid, req.timeout, now)
            case MetaUpdateRequested():
                self._update_meta(rid, req, now)
            case BroadcastRequested(payload=payload):
                self._gossip.broadcast(None, UserMsg(bytes(payload)))
            case UserMessageRequested():
                self._send_user(rid, req)
            case InstallKeyRequested(key=key):
                self._net.install_key(key)
            case UseKeyRequested(key=key):
                self._net.use_key(key)
            case RemoveKeyRequested(key=key):
                self._net.remove_key(key)
            case GossipVerifyRequested():
                self._net.set_verify(req.verify_incoming, req.verify_outgoing)

    def _wait(self, rid: int, kind: str, timeout: float, now: float) -> None:
        self._waiting[rid] = kind
        self._out.timer(RequestTimeout(rid), now + timeout)

    def _complete_wait(self, rid: int) -> None:
        kind = self._waiting.pop(rid, None)
        if kind == "leave":
            self._out.actions.append(LeaveCompleted(rid))
        elif kind == "meta":
            self._out.actions.append(MetaUpdateCompleted(rid))

    def _leave(self, rid: int, timeout: float, now: float) -> None:
        members = self._members
        if members.leaving:
            self._out.actions.append(LeaveCompleted(rid))
            return
        members.leaving = True
        me = members.table[self.name]
        if not members.any_alive_peer():
            members.dead_node(Dead(me.incarnation, self.name, self.name), now)
            self._out.actions.append(LeaveCompleted(rid))
            return
        self._wait(rid, "leave", timeout, now)
        members.dead_node(Dead(me.incarnation, self.name, self.name), now, notify=rid)

    def _update_meta(self, rid: int, req: MetaUpdateRequested, now: float) -> None:
        members = self._members
        self._meta = bytes(req.meta)
        inc = members.bump_incarnation()
        me = members.table[self.name]
        waiting = members.any_alive_peer()
        if waiting:
            self._wait(rid, "meta", req.timeout, now)
        members.alive_node(
            Alive(inc, self.name, me.ip_bytes, me.port, self._meta, me.vsn),
            now,
            bootstrap=True,
            notify=rid if waiting else None,
        )
        if not waiting:
            self._out.actions.append(MetaUpdateCompleted(rid))

    def _send_user(self, rid: int, req: UserMessageRequested) -> None:
        m = self._members.table.get(req.to)
        if m is None:
            raise KeyError(f"no member named {req.to!r}")
        if req.reliable:
            data, size = self._net.stream(UserStream(bytes(req.payload)), dialer=True)
            sid = self._net.open_stream(Purpose.USER, rid, m.address, data, size,
                                        self.config.tcp_timeout, False)
            if sid is None:
                self._out.actions.append(UserMessageSent(rid, "too many open streams"))
            return
        self._net.send_one(m.address, UserMsg(bytes(req.payload)), crc=m.pmax >= CRC_MIN_PROTOCOL)
        self._out.actions.append(UserMessageSent(rid, None))


def _check_address(a: object) -> None:
    if not (isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], str)
            and isinstance(a[1], int)):
        raise TypeError(f"an address is a (host, port) tuple, not {a!r}")
    try:
        ipaddress.ip_address(a[0])
    except ValueError:
        raise ValueError(
            f"{a[0]!r} is not an IP address: resolve names before joining (the engine "
            "takes resolved addresses only)"
        ) from None
    if not 0 < a[1] <= 0xFFFF:
        raise ValueError(f"{a[1]} is not a usable port")


__all__ = ["Delegate", "Engine"]
