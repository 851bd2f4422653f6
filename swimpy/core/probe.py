"""Failure detection: the probe ticker, direct pings, indirect pings through k members
with nacks, the TCP fallback, and the relays we run for others' indirect probes.
memberlist state.go ``probe`` / ``probeNode``, net.go ``handlePing`` /
``handleIndirectPing``; LIFEGUARD.md §3-§5."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from swimpy.core.actions import PingCompleted, SetTimer
from swimpy.core.addresses import ip_text
from swimpy.core.delegate import Hooks
from swimpy.core.gossip import CRC_MIN_PROTOCOL, Gossip
from swimpy.core.lifeguard import Awareness
from swimpy.core.member import Address, Member, State
from swimpy.core.members import Members
from swimpy.core.net import Net, Purpose
from swimpy.core.outbox import Outbox
from swimpy.core.timers import PROBE_TICK, ProbeEnd, ProbeTimeout, RelayEnd
from swimpy.profiles import Config
from swimpy.wire.messages import Ack, IndirectPing, Nack, Ping, Suspect
from swimpy.wire.stream import StreamMessage

log = logging.getLogger("swimpy.core")

_U32 = 0xFFFFFFFF
#: Most ack handlers (our probe + indirect probes we relay) in flight; more are dropped.
MAX_ACK_HANDLERS = 4096
#: memberlist protocol versions from which a peer answers TCP pings / sends nacks.
TCP_PING_MIN_PROTOCOL = 3
NACK_MIN_PROTOCOL = 4
#: states skipped by the probe round (memberlist probes alive and suspect members)
_NOT_PROBED = (State.DEAD, State.LEFT)


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


class Prober:
    def __init__(
        self, config: Config, outbox: Outbox, rng: random.Random, members: Members,
        gossip: Gossip, net: Net, awareness: Awareness, hooks: Hooks, ip: bytes, port: int,
    ) -> None:
        self.config = config
        self._out = outbox
        self._rng = rng
        self._members = members
        self._gossip = gossip
        self._net = net
        self._awareness = awareness
        self._hooks = hooks
        self._ip = ip
        self._port = port
        self._name = config.name
        self._seq = 0
        self._acks: dict[int, _Probe | _Relay] = {}
        self._probe: _Probe | None = None
        self._tick_at = 0.0
        self._tick_pending = False

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & _U32
        return self._seq

    # ------------------------------------------------------------------ the ticker

    def start(self, now: float, stagger: float) -> None:
        self._tick_at = now + stagger + self.config.probe_interval
        self._out.timer(PROBE_TICK, self._tick_at)

    def tick(self, now: float) -> None:
        # A ticker: the next tick keeps the phase (no drift when a timer is late), and
        # ticks missed entirely are dropped, as Go's time.Ticker does.
        interval = self.config.probe_interval
        at = self._tick_at + interval
        while at <= now:
            at += interval
        self._tick_at = at
        self._out.actions.append(SetTimer(PROBE_TICK, at))
        if self._probe is None:
            self._probe_next(now)
        elif not self._tick_pending:
            # Go's ticker channel holds one tick: the next probe starts as soon as the
            # running one ends.
            self._tick_pending = True
        else:
            self._out.stats["probe_ticks_skipped"] += 1

    def _run_pending_tick(self, now: float) -> None:
        if self._tick_pending and self._probe is None:
            self._tick_pending = False
            self._probe_next(now)

    def _probe_next(self, now: float) -> None:
        """``probe()``: one probe per tick over a shuffled round-robin (LIFEGUARD §3)."""
        members = self._members
        order = members.order
        num_check = 0
        while True:
            if num_check >= members.num_nodes:
                return
            m = order.next()
            if m is None:
                # the round is over (memberlist: probeIndex >= len(nodes))
                members.reset_nodes(now)
                num_check += 1
                continue
            if m.name == self._name or m.state in _NOT_PROBED:
                num_check += 1
                continue
            self._probe_node(m, now)
            return

    # ------------------------------------------------------------------ our probe

    def _probe_node(self, m: Member, now: float) -> None:
        c = self.config
        interval = self._awareness.scale_timeout(c.probe_interval)
        self._seq = seq = (self._seq + 1) & _U32
        probe = _Probe(seq, m, now, now + interval)
        self._probe = probe
        self._acks[seq] = probe
        ping = Ping(seq, m.name, self._ip, self._port, self._name)
        out = self._out
        out.stats["probes"] += 1
        if m.state == State.ALIVE:
            self._gossip.send_msg(m.address, ping)
        else:
            # Buddy system: tell a suspect it is suspected, with the probe itself.
            codec = self._net.codec
            (p1, n1), (p2, n2) = codec.encode_part(ping), codec.encode_part(
                Suspect(m.incarnation, m.name, self._name)
            )
            self._net.send(m.address, [p1, p2], [n1, n2], crc=m.pmax >= CRC_MIN_PROTOCOL)
        # One timer per probe at a time: ProbeEnd is set when ProbeTimeout fires without
        # an ack (most probes are acked before it, and timers are never cancelled, so
        # setting both up front would deliver a stale ProbeEnd for nearly every probe).
        # The config keeps probe_timeout <= probe_interval <= the scaled deadline.
        out.actions.append(SetTimer(ProbeTimeout(seq), now + c.probe_timeout))

    def timeout(self, seq: int, now: float) -> None:
        """No direct ack within ProbeTimeout: indirect probes and the TCP fallback."""
        p = self._probe
        if p is None or p.seq != seq or p.done:
            return
        p.indirect = True
        self._out.timer(ProbeEnd(seq), p.deadline)
        m = p.target
        me = self._name
        peers = self._members.k_random(
            self.config.indirect_checks,
            lambda x: x.name != me and x.name != m.name and x.state == State.ALIVE,
        )
        for peer in peers:
            want_nack = peer.pmax >= NACK_MIN_PROTOCOL
            if want_nack:
                p.expected_nacks += 1
            ind = IndirectPing(p.seq, m.ip_bytes, m.port, m.name, want_nack, self._ip,
                               self._port, me)
            self._out.stats["indirect_probes"] += 1
            self._gossip.send_msg(peer.address, ind)
        # TCP fallback, concurrently.
        if not self.config.disable_tcp_pings and m.pmax >= TCP_PING_MIN_PROTOCOL:
            remaining = p.deadline - now
            if remaining > 0:
                self._out.stats["tcp_fallback_probes"] += 1
                ping = Ping(p.seq, m.name, self._ip, self._port, me)
                data, size = self._net.stream(ping, dialer=True)
                self._net.open_stream(Purpose.FALLBACK, p.seq, m.address, data, size,
                                      remaining, True)

    def end(self, seq: int, now: float) -> None:
        """The probe's interval is over without an ack: suspect the target."""
        p = self._probe
        if p is None or p.seq != seq or p.done:
            return
        p.done = True
        self._probe = None
        self._acks.pop(seq, None)
        m = p.target
        if p.fallback_ok:
            log.info("%s: was able to reach %s over TCP but not UDP", self._name, m.name)
            self._out.stats["tcp_fallback_successes"] += 1
            self._awareness.apply_delta(-1)
        else:
            delta = max(0, p.expected_nacks - p.nacks) if p.expected_nacks > 0 else 1
            self._awareness.apply_delta(delta)
            self._out.stats["probes_failed"] += 1
            log.info("%s: suspect %s has failed, no acks received", self._name, m.name)
            # The incarnation from probe start: a refutation that arrived meanwhile makes
            # this suspicion stale, as in memberlist (it suspects its copy of the node).
            self._members.suspect_node(Suspect(m.incarnation, m.name, self._name), now)
        self._run_pending_tick(now)

    def fallback_reply(self, seq: int, msg: StreamMessage | None) -> None:
        p = self._probe
        if isinstance(msg, Ack) and p is not None and p.seq == seq and msg.seq_no == seq:
            p.fallback_ok = True

    # ------------------------------------------------------------------ acks and nacks

    def on_ack(self, ack: Ack, now: float) -> None:
        h = self._acks.pop(ack.seq_no, None)
        if h is None:
            # memberlist drops acks for probes that already ended without a word
            self._out.ignore("acks_late_or_unknown")
            return
        self._out.stats["acks"] += 1
        if isinstance(h, _Relay):
            self._gossip.send_msg(h.reply_to, Ack(h.seq))
            return
        if h.done:
            return
        h.done = True
        self._awareness.apply_delta(-1)
        if not h.indirect:
            # memberlist reports RTT only for an ack within ProbeTimeout; a late or relayed
            # ack saves the member but is no round-trip sample (Serf's coordinates).
            self._out.actions.append(PingCompleted(h.target.name, now - h.sent, ack.payload))
        if self._probe is h:
            self._probe = None
            if self._tick_pending:
                self._run_pending_tick(now)

    def on_nack(self, nack: Nack) -> None:
        h = self._acks.get(nack.seq_no)
        if isinstance(h, _Probe) and not h.done:
            h.nacks += 1
            self._out.stats["nacks"] += 1
        else:
            self._out.ignore("nacks_late_or_unknown")

    # ------------------------------------------------------------------ serving others

    def on_ping(self, ping: Ping, source: Address) -> None:
        if ping.node and ping.node != self._name:
            self._out.drop("wrong_node", f"ping for {ping.node!r}")
            return
        reply_to = source
        if ping.source_addr and ping.source_port:
            host = ip_text(ping.source_addr)
            if host is not None:
                reply_to = (host, ping.source_port)
        hooks = self._hooks
        payload = b"" if hooks.ack_payload is None else hooks.call("ack_payload", b"")
        self._gossip.send_msg(reply_to, Ack(ping.seq_no, payload))

    def tcp_ping_reply(self, ping: Ping) -> Ack | None:
        """Answer to a TCP fallback ping, or None if it is for another member."""
        if ping.node and ping.node != self._name:
            self._out.drop("wrong_node", f"TCP ping for {ping.node!r}")
            return None
        return Ack(ping.seq_no)

    def on_indirect_ping(self, ind: IndirectPing, source: Address, now: float) -> None:
        host = ip_text(ind.target)
        if host is None:
            self._out.drop("malformed", "indirect ping with a bad target address")
            return
        target_port = ind.port
        if target_port == 0 or self.config.protocol_version < 2:
            target_port = self.config.bind_port or self._port
        reply_to = source
        if ind.source_addr and ind.source_port:
            h = ip_text(ind.source_addr)
            if h is not None:
                reply_to = (h, ind.source_port)
        if len(self._acks) >= MAX_ACK_HANDLERS:
            self._out.drop("overload", "too many indirect probes in flight")
            return
        seq = self._next_seq()
        self._acks[seq] = _Relay(ind.seq_no, reply_to, ind.nack)
        self._out.timer(RelayEnd(seq), now + self.config.probe_timeout)
        self._gossip.send_msg((host, target_port),
                              Ping(seq, ind.node, self._ip, self._port, self._name))

    def relay_end(self, seq: int) -> None:
        h = self._acks.pop(seq, None)
        if isinstance(h, _Relay) and h.want_nack:
            self._gossip.send_msg(h.reply_to, Nack(h.seq))
