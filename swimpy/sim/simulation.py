"""The discrete-event loop: real ``swimpy.core.Engine`` objects over a modelled network.

Events live in one heap ordered by ``(time, sequence)``; the sequence number is a global
counter, so events at the same instant run in the order they were scheduled. Every
random choice comes from a ``random.Random`` seeded from the run's seed and a fixed label
(one per concern: the network, the scenario's choices, each node process), so the same
scenario and seed replay the same trace on any machine. No wall clock is read here.

Heap entries are tuples ``(time, seq, kind, target, tag, payload)``:

* ``K_TIMER``: timer ``payload`` (``Engine.timer_fired``) for member ``target`` if its
  process epoch is still ``tag``;
* ``K_PACKET``: datagram ``payload`` (``Engine.packet_received``) for whatever process
  listens at ``target`` now, from member ``tag`` (its address and the trace);
* ``K_CALL``: ``payload(*tag)``, scenario actions and stream plumbing.
"""

from __future__ import annotations

import gc
import hashlib
import heapq
import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from swimpy.core import (
    Action,
    CloseStream,
    ConnId,
    Engine,
    EventKind,
    JoinRequested,
    LeaveCompleted,
    LeaveRequested,
    Member,
    MemberBase,
    MemberEvent,
    ObjectCodec,
    OpenStream,
    ReplyStream,
    Request,
    SendPacket,
    SetTimer,
    State,
    StreamFailed,
    StreamId,
    StreamReceived,
    StreamResponse,
    StreamSent,
    WireCodec,
)
from swimpy.core.inputs import Input
from swimpy.profiles import Config
from swimpy.sim.metrics import Metrics
from swimpy.sim.network import LinkParams, Network, Partition
from swimpy.sim.scenario import EventSpec, LinkSpec, Scenario
from swimpy.testing import Connections
from swimpy.wire.constants import MAX_PUSH_STATE_BYTES

__all__ = ["Simulation"]

K_TIMER = 0
K_PACKET = 1
K_CALL = 2

_IN_VIEW = (State.ALIVE, State.SUSPECT)
_TRACE_FLUSH = 4096
#: allocations between young-generation collections during a run (CPython's default: 700)
_GC_YOUNG_THRESHOLD = 50_000
#: Kinds of member events written to the trace (one letter each).
_EVENT_CODE = {
    EventKind.JOINED: "J",
    EventKind.UPDATED: "U",
    EventKind.SUSPECT: "S",
    EventKind.REFUTED: "R",
    EventKind.DEAD: "D",
    EventKind.LEFT: "L",
    EventKind.REAPED: "X",
}

#: Linux's initial retransmission timeout, used for a lost SYN or SYN-ACK (RFC 6298 2.1,
#: ``TCP_TIMEOUT_INIT``).
TCP_SYN_RTO = 1.0
#: Linux's floor on the retransmission timeout of data (``TCP_RTO_MIN``).
TCP_RTO_MIN = 0.2
#: Linux's ceiling on it (``TCP_RTO_MAX``).
TCP_RTO_MAX = 120.0
#: Stop drawing retransmissions past this: every stream's own timeout is shorter, so the
#: dialer has given up already (and a loss close to 1 cannot loop for long).
TCP_GIVE_UP = 600.0


def _data_rto(there: LinkParams, back: LinkParams) -> float:
    """The retransmission timeout of a connection's data after its handshake: Linux sets
    it from the handshake's round trip ``r`` as ``r + max(2 r, TCP_RTO_MIN)``
    (``tcp_rtt_estimator``/``__tcp_set_rto``: srtt = r, rttvar = max(r/2 * 4, rto_min))."""
    rtt = there.mean_latency + back.mean_latency
    return rtt + max(2.0 * rtt, TCP_RTO_MIN)


def _ip_of(i: int) -> str:
    """Member ``i``'s address: 10.0.0.1, 10.0.0.2, ... (room for 16 million members)."""
    x = i + 1
    return f"10.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}"


@dataclass(slots=True)
class _Stream:
    """One simulated TCP connection, from the dialer's side."""

    dialer: int
    epoch: int
    sid: StreamId
    dest: int
    dest_epoch: int
    expect_reply: bool
    done: bool = False


class Simulation:
    """One run of a scenario with one seed.

    ``fidelity`` "fast" passes message objects between engines (the ``ObjectCodec``);
    "wire" encodes every packet and stream with the real codec (``WireCodec``) (exact byte counts, after
    compression and encryption). Both give the same trace for the same seed.

    Drive it with :meth:`run` (to the scenario's end) or :meth:`run_until`, and change the
    world in between with :meth:`crash`, :meth:`restart`, :meth:`leave`,
    :meth:`partition`, :meth:`heal`, :meth:`set_loss`, :meth:`starve` (what the scenario's
    events do, and what the property tests call directly).
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        *,
        fidelity: str | None = None,
        timeline: bool = False,
    ) -> None:
        sc = scenario if fidelity is None else scenario.with_overrides(fidelity=fidelity)
        # Member indices and counts against the cluster size, before anything is built (a
        # parsed file is checked already; a Scenario built in Python is checked here).
        sc.check_members()
        self.scenario = sc
        self.seed = sc.seed if seed is None else seed
        self.fidelity = sc.fidelity
        self.wire = sc.fidelity == "wire"
        n = sc.nodes
        self.n = n
        width = max(3, len(str(n - 1)))
        self.names = [f"node-{i:0{width}d}" for i in range(n)]
        self.index = {name: i for i, name in enumerate(self.names)}
        base = sc.base_config()
        self.base_config = base
        port = base.bind_port or 7946
        self.addrs = [(_ip_of(i), port) for i in range(n)]
        self.addr_index = {a: i for i, a in enumerate(self.addrs)}
        self._configs: list[Config | None] = [None] * n
        self.now = 0.0
        self.end = sc.duration
        self._heap: list[tuple[Any, ...]] = []
        self._seq = itertools.count()
        self._net_rng = random.Random(f"{self.seed}:network")
        self._scen_rng = random.Random(f"{self.seed}:scenario")
        default = LinkSpec(
            latency=sc.latency,
            loss=sc.loss,
            duplicate=sc.duplicate,
            reorder=sc.reorder,
            reorder_delay=sc.reorder_delay,
        )
        self.net = Network(n, default, self._net_rng, clock=lambda: self.now)
        self.nodes: list[Engine | None] = [None] * n
        #: one object codec for the whole run: its size cache serves every engine
        self._codec = ObjectCodec()
        self.epoch = [0] * n
        self.running = [False] * n
        self.leaving = [False] * n
        #: inbound connections being served -> the dialer's side
        self._inbound: Connections[_Stream] = Connections()
        self._partition_seq = itertools.count(1)
        self._hash = hashlib.sha256()
        self._trace: list[str] = []
        self.timeline_enabled = timeline
        self.timeline: dict[str, list[float]] = {
            "t": [],
            "correct_fraction": [],
            "mismatches": [],
            "mean_view": [],
            "running": [],
            "health_max": [],
        }
        self.health_max = 0
        self._health_sum = 0.0
        self._health_samples = 0
        # counters
        self.packets_sent = 0
        self.bytes_sent = 0
        self.streams_sent = 0
        self.stream_bytes_sent = 0
        self.delivered = 0
        self.drops: dict[str, int] = {}
        self.events_processed = 0
        self.stream_failures = 0
        self.metrics = Metrics(
            n,
            self.names,
            self._in_view,
            self._view_of,
            self.net.reachable,
            lambda: self._cut,
            cut_between=self.net.cut_between,
            probe_window=self._probe_window,
        )
        self._cut = False
        #: the member whose message is being handled (-1: a timer, a request, an action);
        #: a verdict reached meanwhile rests on that member's evidence (see metrics)
        self._source = -1
        self._groups: dict[str, tuple[int, ...]] = {
            g: sc.members_of(g) for g in sc.groups
        }
        #: one record per scenario event carried out: which members it picked
        self.picks: list[dict[str, Any]] = []
        self._max_packet = sc.max_packet
        #: what ``_apply`` does with actions other than timers and datagrams, by type
        self._action_handlers: dict[type[Action], Callable[[int, Any, float], None]] = {
            MemberEvent: self._member_event,
            OpenStream: self._open_stream,
            ReplyStream: self._reply_stream,
            CloseStream: self._close_stream,
            LeaveCompleted: self._leave_completed,
        }
        self._setup()

    # ================================================================== setup

    def group(self, name: str) -> tuple[int, ...]:
        if name in ("*", "all"):
            return tuple(range(self.n))
        return self._groups[name]

    def config_for(self, i: int) -> Config:
        cfg = self._configs[i]
        if cfg is None:
            cfg = self.base_config.replace(
                name=self.names[i],
                bind_addr=self.addrs[i][0],
                bind_port=self.addrs[i][1],
            )
            self._configs[i] = cfg
        return cfg

    def _setup(self) -> None:
        sc = self.scenario
        # Link rules active from the start; timed ones become events.
        for k, rule in enumerate(sc.links):
            if rule.at is None or rule.at <= 0:
                self.net.add_rule(k, rule, self.group(rule.src), self.group(rule.dst))
            else:
                self.call_at(rule.at, self._rule_on, k)
            if rule.until is not None:
                self.call_at(rule.until, self._rule_off, k)
        self._cut = self.net.any_blocking()
        absent = set(self.group(sc.start.absent)) if sc.start.absent else set()
        starting = [i for i in range(self.n) if i not in absent]
        if sc.start.mode == "converged":
            self._start_converged(starting)
        else:
            self._start_joining(starting)
        for ev in sc.events:
            self.call_at(ev.at, self._scenario_event, ev)

    def _start_converged(self, starting: Sequence[int]) -> None:
        t = 0.0
        records = []
        for i in starting:
            cfg = self.config_for(i)
            ip = self.addrs[i][0]
            records.append(
                Member(
                    self.names[i],
                    ip,
                    self.addrs[i][1],
                    b"",
                    1,
                    State.ALIVE,
                    t,
                    cfg.vsn,
                    bytes(int(x) for x in ip.split(".")),
                )
            )
        shared = MemberBase(records)
        self.metrics.bulk = True
        for i in starting:
            node = self._new_node(i, t)
            node.bootstrap_members(shared)
            self._boot(i, node, t)
        self.metrics.finish_bulk(t)

    def _start_joining(self, starting: Sequence[int]) -> None:
        if not starting:
            return
        st = self.scenario.start
        first = starting[0]
        self.call_at(0.0, self._start_member, first, 0)
        window = st.join_window
        for i in starting[1:]:
            at = self._scen_rng.random() * window if window > 0 else 0.0
            self.call_at(at, self._start_member, i, st.seeds, st.join_to == "first")

    # ================================================================== node processes

    def _new_node(self, i: int, t: float) -> Engine:
        self.epoch[i] += 1
        e = self.epoch[i]
        name = self.names[i]
        node = Engine(
            self.config_for(i),
            advertise=self.addrs[i],
            rng=random.Random(f"{self.seed}:node:{name}:{e}"),
            nonce_source=random.Random(f"{self.seed}:nonce:{name}:{e}").randbytes,
            codec=WireCodec() if self.wire else self._codec,
        )
        self.nodes[i] = node
        return node

    def _boot(self, i: int, node: Engine, t: float) -> None:
        self.running[i] = True
        self.leaving[i] = False
        self.metrics.set_running(t, i, True)
        self.metrics.activate(t, i)
        self._apply(i, node.start(t), t)

    def _start_member(self, i: int, seeds: int, to_first: bool = False) -> None:
        """Start (or restart) member ``i`` and join ``seeds`` running members."""
        t = self.now
        if self.running[i]:
            return
        self.metrics.restarted(t, i)
        self._trace_line(f"{self._us(t)} c start {i}")
        self.metrics.disruption(t, f"start {self.names[i]}")
        node = self._new_node(i, t)
        self._boot(i, node, t)
        peers = self._pick_seeds(i, seeds, to_first)
        if peers:
            _, acts = node.submit(JoinRequested(tuple(self.addrs[p] for p in peers)), t)
            self._apply(i, acts, t)

    def _pick_seeds(self, i: int, k: int, to_first: bool) -> list[int]:
        if to_first:
            first = next((j for j in range(self.n) if j != i and self.running[j]), None)
            return [] if first is None else [first]
        cands = [j for j in range(self.n) if j != i and self.running[j] and not self.leaving[j]]
        if len(cands) <= k:
            return cands
        return self._scen_rng.sample(cands, k)

    # ================================================================== public controls

    def crash(self, i: int) -> None:
        """SIGKILL member ``i``: it stops at once, without a word to anyone."""
        if not self.running[i]:
            return
        t = self.now
        self._trace_line(f"{self._us(t)} c crash {i}")
        node = self.nodes[i]
        assert node is not None
        node.shutdown()
        self.running[i] = False
        self.leaving[i] = False
        self.metrics.set_running(t, i, False)
        self.metrics.deactivate(t, i)
        self.metrics.crashed(t, i)
        self.metrics.disruption(t, f"crash {self.names[i]}")

    def restart(self, i: int, seeds: int = 1) -> None:
        """Start member ``i`` again under the same name and address, joining ``seeds``
        random running members."""
        self._start_member(i, seeds)

    def leave(self, i: int, timeout: float = 5.0) -> None:
        """Graceful leave: broadcast it, then stop once it was sent (or after ``timeout``)."""
        if not self.running[i] or self.leaving[i]:
            return
        t = self.now
        self._trace_line(f"{self._us(t)} c leave {i}")
        self.leaving[i] = True
        self.metrics.deactivate(t, i)
        self.metrics.leaving(t, i)
        self.metrics.disruption(t, f"leave {self.names[i]}")
        node = self.nodes[i]
        assert node is not None
        _, acts = node.submit(LeaveRequested(timeout=timeout), t)
        self._apply(i, acts, t)

    def _stopped(self, i: int, epoch: int) -> None:
        """A leaving member finished (memberlist users call Shutdown after Leave)."""
        if not self.running[i] or self.epoch[i] != epoch:
            return
        t = self.now
        node = self.nodes[i]
        assert node is not None
        node.shutdown()
        self.running[i] = False
        self._trace_line(f"{self._us(t)} c stopped {i}")
        self.metrics.set_running(t, i, False)
        self.metrics.disruption(t, f"stopped {self.names[i]}")

    def partition(
        self,
        a: Iterable[int],
        b: Iterable[int] | None = None,
        *,
        symmetric: bool = True,
        pid: str | None = None,
    ) -> str:
        """Cut ``a`` from ``b`` (default: everyone else). One-way (``a`` -> ``b`` lost) when
        not ``symmetric``. Returns the partition id for :meth:`heal`."""
        sa = frozenset(a)
        sb = frozenset(b) if b is not None else frozenset(range(self.n)) - sa
        pid = pid or f"p{next(self._partition_seq)}"
        self.net.partition(Partition(pid, sa, sb, symmetric))
        self._trace_line(f"{self._us(self.now)} c partition {pid}")
        self._network_changed(f"partition {pid}")
        return pid

    def heal(self, pid: str | None = None) -> None:
        """End partition ``pid`` (None = all partitions)."""
        healed = self.net.heal(pid)
        if healed:
            self._trace_line(f"{self._us(self.now)} c heal {','.join(healed)}")
            self._network_changed(f"heal {','.join(healed)}")

    def set_loss(self, loss: float, a: Iterable[int] | None = None,
                 b: Iterable[int] | None = None, key: int = -1) -> None:
        """Set packet loss on every link (or from ``a`` to ``b`` and back); replaces an
        earlier call with the same ``key``."""
        self.net.remove_rule(key)
        if loss > 0 or a is not None:
            sa = range(self.n) if a is None else a
            sb = range(self.n) if b is None else b
            self.net.add_rule(key, LinkSpec(loss=loss), sa, sb)
        self._trace_line(f"{self._us(self.now)} c loss {loss!r}")
        self._network_changed(f"loss {loss:g}")

    def starve(self, i: int, delay: float) -> None:
        """Member ``i`` handles everything it receives ``delay`` seconds late (0 = stop)."""
        self.net.starve_delay[i] = delay
        self._trace_line(f"{self._us(self.now)} c starve {i} {delay!r}")
        self.metrics.disruption(self.now, f"starve {self.names[i]} {delay:g}s")

    def _rule_on(self, k: int) -> None:
        rule = self.scenario.links[k]
        self.net.add_rule(k, rule, self.group(rule.src), self.group(rule.dst))
        self._trace_line(f"{self._us(self.now)} c link+ {k}")
        self._network_changed(f"link {k} on")

    def _rule_off(self, k: int) -> None:
        self.net.remove_rule(k)
        self._trace_line(f"{self._us(self.now)} c link- {k}")
        self._network_changed(f"link {k} off")

    def _network_changed(self, what: str) -> None:
        self._cut = self.net.any_blocking()
        self.metrics.disruption(self.now, what)
        self.metrics.recompute(self.now)

    # ================================================================== scenario events

    def call_at(self, t: float, fn: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), K_CALL, -1, args, fn))

    def members_text(self, members: Iterable[int]) -> list[str]:
        """Members by name, runs of three or more consecutive ones as ``first..last``:
        ``["node-000..node-009", "node-012"]`` (short even for half of 10,000 members)."""
        out: list[str] = []
        xs = sorted(set(members))
        k = 0
        while k < len(xs):
            j = k
            while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
                j += 1
            if j - k >= 2:
                out.append(f"{self.names[xs[k]]}..{self.names[xs[j]]}")
            else:
                out += [self.names[x] for x in xs[k : j + 1]]
            k = j + 1
        return out

    def _pick(self, ev: EventSpec, **fields: Any) -> None:
        """Record what scenario event ``ev`` did now, for the result's ``events``."""
        rec: dict[str, Any] = {"event": ev.index, "at_s": round(self.now, 6), "action": ev.action}
        for key in ("group", "node", "count", "src", "dst", "id"):
            value = getattr(ev, key)
            if value is not None:
                rec[{"src": "from", "dst": "to"}.get(key, key)] = value
        if ev.between:
            rec["between"] = list(ev.between)
        rec.update(fields)
        self.picks.append(rec)

    def _targets(self, ev: EventSpec, eligible: Callable[[int], bool]) -> list[int]:
        # ev.node is in range: Scenario.check_members
        cands = [ev.node % self.n] if ev.node is not None else list(self.group(ev.group or "all"))
        cands = [i for i in cands if eligible(i)]
        n_eligible = len(cands)
        if ev.count is not None and ev.count < len(cands):
            cands = sorted(self._scen_rng.sample(cands, ev.count))
        if ev.count is not None:
            self._pick(ev, eligible=n_eligible, members=self.members_text(cands))
        else:
            self._pick(ev, members=self.members_text(cands))
        return cands

    def _scenario_event(self, ev: EventSpec) -> None:
        a = ev.action
        up = self._is_up
        if a == "crash":
            for i in self._targets(ev, up):
                self.crash(i)
        elif a == "leave":
            for i in self._targets(ev, up):
                self.leave(i, ev.timeout)
        elif a in ("restart", "join"):
            for i in self._targets(ev, lambda i: not self.running[i]):
                self._start_member(i, ev.seeds)
        elif a == "partition" or a == "flap":
            if ev.between:
                ga = self.group(ev.between[0])
                gb = self.group(ev.between[1]) if len(ev.between) > 1 else None
                sym = True
            else:
                assert ev.src is not None and ev.dst is not None
                ga, gb, sym = self.group(ev.src), self.group(ev.dst), False
            rest = gb if gb is not None else sorted(set(range(self.n)) - set(ga))
            self._pick(ev, sides=[self.members_text(ga), self.members_text(rest)])
            if a == "partition":
                pid = self.partition(ga, gb, symmetric=sym, pid=ev.id)
                if ev.until is not None:
                    self.call_at(ev.until, self.heal, pid)
            else:
                assert ev.until is not None
                pid = ev.id or f"flap{ev.index}"
                t = ev.at
                while t < ev.until:
                    self.call_at(t, self._flap_down, ga, gb, sym, pid)
                    t_up = min(t + ev.down, ev.until)
                    self.call_at(t_up, self.heal, pid)
                    t = t_up + ev.up
        elif a == "heal":
            self._pick(ev)
            self.heal(ev.id)
        elif a == "starve":
            for i in self._targets(ev, lambda i: True):
                self.starve(i, ev.delay)
                if ev.until is not None:
                    self.call_at(ev.until, self.starve, i, 0.0)
        elif a == "unstarve":
            for i in self._targets(ev, lambda i: True):
                self.starve(i, 0.0)
        elif a == "churn":
            self._pick(ev, members=self.members_text(self.group(ev.group or "all")))
            self._churn(ev)

    def _is_up(self, i: int) -> bool:
        return self.running[i] and not self.leaving[i]

    def _flap_down(self, ga: tuple[int, ...], gb: tuple[int, ...] | None, sym: bool,
                   pid: str) -> None:
        self.partition(ga, gb, symmetric=sym, pid=pid)

    def _churn(self, ev: EventSpec) -> None:
        """One churn step: one member goes (leave or crash), one stopped member (re)joins;
        then schedule the next step after an exponential wait."""
        t = self.now
        assert ev.until is not None
        if t >= ev.until:
            return
        rng = self._scen_rng
        group = self.group(ev.group or "all")
        up = [i for i in group if self._is_up(i)]
        down = [i for i in group if not self.running[i]]
        if up and len(up) > 1:
            i = up[rng.randrange(len(up))]
            if rng.random() < ev.crash_fraction:
                self.crash(i)
            else:
                self.leave(i, ev.timeout)
        if down:
            j = down[rng.randrange(len(down))]
            self._start_member(j, ev.seeds)
        nxt = t + rng.expovariate(1.0 / ev.interval)
        if nxt < ev.until:
            self.call_at(nxt, self._churn, ev)

    # ================================================================== the loop

    def run_until(self, t_end: float) -> None:
        """Process every event at or before ``t_end``; then the clock reads ``t_end``."""
        heap = self._heap
        pop = heapq.heappop
        push = heapq.heappush
        seq = self._seq
        nodes = self.nodes
        running = self.running
        epoch = self.epoch
        addrs = self.addrs
        addr_index = self.addr_index
        max_packet = self._max_packet
        link = self.net.link
        starve = self.net.starve_delay
        trace = self._trace
        handlers = self._action_handlers
        processed = 0
        # counted here and added to the attributes at the end (the slow paths called
        # from here count into the attributes directly)
        delivered = sent = sent_bytes = 0
        while heap and heap[0][0] <= t_end:
            t, _, kind, target, tag, payload = pop(heap)
            self.now = t
            processed += 1
            if kind == K_TIMER:
                if epoch[target] != tag or not running[target]:
                    continue
                self._source = -1
                acts = nodes[target].timer_fired(payload, t)
            elif kind == K_PACKET:
                if not running[target]:
                    self._drop("down", tag, target, t)
                    continue
                delivered += 1
                trace.append(f"{int(t * 1e6 + 0.5)} d {tag} {target}")
                if len(trace) >= _TRACE_FLUSH:
                    self._flush_trace()
                self._source = tag
                acts = nodes[target].packet_received(addrs[tag], payload, t)
            else:
                self._source = -1
                payload(*tag)
                continue
            # ``_apply`` inlined (one call less per event), with ``_send_packet``'s
            # common case: a routable datagram over a link with nothing but latency
            for a in acts:
                tp = type(a)
                if tp is SetTimer:
                    push(heap, (a.at, next(seq), K_TIMER, target, epoch[target], a.timer))
                elif tp is SendPacket:
                    dst = addr_index.get(a.dest)
                    if dst is not None and a.size <= max_packet:
                        p = link(target, dst)
                        if p.plain:
                            sent += 1
                            sent_bytes += a.size
                            push(heap, (t + p.latency() + starve[dst], next(seq), K_PACKET,
                                        dst, target, a.data))
                            continue
                    self._send_packet(target, a, t)
                else:
                    handler = handlers.get(tp)
                    if handler is not None:
                        handler(target, a, t)
        self.events_processed += processed
        self.delivered += delivered
        self.packets_sent += sent
        self.bytes_sent += sent_bytes
        if t_end > self.now:
            self.now = t_end

    def request(self, i: int, req: Request) -> tuple[int, list[Action]]:
        """Submit ``req`` (a ``JoinRequested``, ``BroadcastRequested``,
        ``UserMessageRequested``, ``MetaUpdateRequested``...) to running member ``i`` now;
        its actions are carried out and returned with the request's id."""
        if not self.running[i]:
            raise ValueError(f"{self.names[i]} is not running")
        node = self.nodes[i]
        assert node is not None
        rid, acts = node.submit(req, self.now)
        self._apply(i, acts, self.now)
        return rid, acts

    def deliver(self, i: int, inp: Input, t: float, epoch: int, source: int = -1) -> None:
        """Hand ``inp`` to member ``i`` at ``t`` if process ``epoch`` is still running
        (``source``: the member that sent it, -1 for none)."""
        if self.epoch[i] != epoch or not self.running[i]:
            return
        node = self.nodes[i]
        assert node is not None
        self._source = source
        acts = node.handle(inp, t)
        if acts:
            self._apply(i, acts, t)

    def _apply(self, i: int, acts: list[Action], t: float) -> None:
        heap = self._heap
        push = heapq.heappush
        seq = self._seq
        for a in acts:
            # timers and datagrams are nearly every action: exact types first, the rest
            # through a table (PingCompleted and other reports need nothing here)
            tp = type(a)
            if tp is SetTimer:
                push(heap, (a.at, next(seq), K_TIMER, i, self.epoch[i], a.timer))  # type: ignore[attr-defined]
            elif tp is SendPacket:
                self._send_packet(i, a, t)  # type: ignore[arg-type]
            else:
                handler = self._action_handlers.get(tp)
                if handler is not None:
                    handler(i, a, t)

    def _leave_completed(self, i: int, a: LeaveCompleted, t: float) -> None:
        self.call_at(t, self._stopped, i, self.epoch[i])

    # ================================================================== packets

    def _send_packet(self, src: int, a: SendPacket, t: float) -> None:
        self.packets_sent += 1
        size = a.size
        self.bytes_sent += size
        dst = self.addr_index.get(a.dest)
        if dst is None:
            self._drop("no_route", src, -1, t)
            return
        if size > self._max_packet:
            self._drop("oversize", src, dst, t)
            return
        net = self.net
        p = net.link(src, dst)
        if p.blocked:
            self._drop("partition", src, dst, t)
            return
        rnd = self._net_rng.random
        if p.loss and rnd() < p.loss:
            self._drop("loss", src, dst, t)
            return
        delay = p.latency()
        if p.reorder and rnd() < p.reorder:
            delay += rnd() * p.reorder_delay
        starve = net.starve_delay[dst]
        data = a.data
        heapq.heappush(self._heap, (t + delay + starve, next(self._seq), K_PACKET, dst, src,
                                    data))
        if p.duplicate and rnd() < p.duplicate:
            again = t + p.latency() + starve
            heapq.heappush(self._heap, (again, next(self._seq), K_PACKET, dst, src, data))

    def _drop(self, reason: str, src: int, dst: int, t: float) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        self._trace.append(f"{int(t * 1e6 + 0.5)} x {reason} {src} {dst}")
        if len(self._trace) >= _TRACE_FLUSH:
            self._flush_trace()

    # ================================================================== streams
    #
    # TCP is modelled as reliable with latency: the request arrives after a handshake
    # (one-way there, back, there again), the reply one way later. On a lossy link each
    # of those segments can be lost like a datagram and is then retransmitted after a
    # timeout (``_tcp_segment``): 1 s for the SYN and SYN-ACK, Linux's data RTO after that,
    # so a TCP fallback probe or a push/pull across a lossy WAN is slower, and can miss its
    # deadline, as a real one does. Each exchange is one segment each way (a large
    # push/pull's extra segments are not modelled). Across a partition the
    # SYN is lost and the dialer times out (after the stream's timeout, as a real dial to
    # an unreachable host does). A crashed process on a live host refuses the connection
    # after one round trip (its kernel answers the SYN with a reset). A connection open
    # when either end crashes fails on the dialer side at its timeout.

    def _open_stream(self, i: int, a: OpenStream, t: float) -> None:
        self.streams_sent += 1
        self.stream_bytes_sent += a.size
        e = self.epoch[i]
        dst = self.addr_index.get(a.dest)
        st = _Stream(i, e, a.stream_id, -1 if dst is None else dst, 0, a.expect_reply)
        self.call_at(t + a.timeout, self._stream_deadline, st)
        if dst is None:
            self._stream_trace("x no_route", i, -1, t)
            return
        p_there = self.net.link(i, dst)
        p_back = self.net.link(dst, i)
        if p_there.blocked or p_back.blocked or p_there.loss >= 1 or p_back.loss >= 1:
            self._stream_trace("x partition", i, dst, t)
            return
        if a.size > MAX_PUSH_STATE_BYTES:
            self._stream_trace("x oversize", i, dst, t)
            self.call_at(t, self._stream_fail, st, "stream too large")
            return
        if not self.running[dst]:
            rtt = p_there.latency() + p_back.latency()
            self._stream_trace("x refused", i, dst, t)
            self.call_at(t + rtt, self._stream_fail, st, "connection refused")
            return
        st.dest_epoch = self.epoch[dst]
        if p_there.loss or p_back.loss:
            rto = _data_rto(p_there, p_back)
            arrive = (t + self._tcp_segment(p_there, TCP_SYN_RTO)
                      + self._tcp_segment(p_back, TCP_SYN_RTO) + self._tcp_segment(p_there, rto))
        else:
            arrive = t + p_there.latency() + p_back.latency() + p_there.latency()
        arrive += self.net.starve_delay[dst]
        sid = self._inbound.open(st)
        inp = StreamReceived(sid, self.addrs[i], a.data)
        self.call_at(arrive, self._stream_arrive, st, sid, inp)

    def _tcp_segment(self, p: LinkParams, rto: float) -> float:
        """How long one TCP segment takes over a lossy link: each time it is lost (with the
        link's datagram loss) the sender retransmits after ``rto``, doubling it every time
        (RFC 6298 5.5), then it crosses with the link's latency."""
        rnd = self._net_rng.random
        waited = 0.0
        while rnd() < p.loss and waited < TCP_GIVE_UP:
            waited += rto
            rto = min(2.0 * rto, TCP_RTO_MAX)
        return waited + p.latency()

    def _stream_arrive(self, st: _Stream, sid: ConnId, inp: StreamReceived) -> None:
        t = self.now
        dst = st.dest
        if self.epoch[dst] != st.dest_epoch or not self.running[dst]:
            self._inbound.close(sid)
            self._stream_trace("x reset", st.dialer, dst, t)
            self.call_at(t + self.net.link(dst, st.dialer).latency(), self._stream_fail, st,
                         "connection reset")
            return
        self._stream_trace("S", st.dialer, dst, t)
        if not st.expect_reply:
            self._inbound.close(sid)
            back = t + self.net.link(dst, st.dialer).latency()
            self.call_at(back, self._stream_ok, st, StreamSent(st.sid))
        self.deliver(dst, inp, t, st.dest_epoch, st.dialer)

    def _reply_stream(self, i: int, a: ReplyStream, t: float) -> None:
        self.streams_sent += 1
        self.stream_bytes_sent += a.size
        st = self._inbound.close(a.conn_id)
        if st is None or st.done:
            return
        p = self.net.link(i, st.dialer)
        if p.blocked or p.loss >= 1 or self.net.link(st.dialer, i).blocked:
            self._stream_trace("x partition", i, st.dialer, t)
            return  # the dialer times out
        if p.loss:
            delay = self._tcp_segment(p, _data_rto(self.net.link(st.dialer, i), p))
        else:
            delay = p.latency()
        back = t + delay + self.net.starve_delay[st.dialer]
        self.call_at(back, self._stream_ok, st, StreamResponse(st.sid, a.data))

    def _close_stream(self, i: int, a: CloseStream, t: float) -> None:
        st = self._inbound.close(a.conn_id)
        if st is None or st.done or not st.expect_reply:
            return
        back = t + self.net.link(i, st.dialer).latency()
        self.call_at(back, self._stream_fail, st, "closed without reply")

    def _stream_ok(self, st: _Stream, resp: StreamResponse | StreamSent) -> None:
        if st.done:
            return
        st.done = True
        self._stream_trace("R", st.dest, st.dialer, self.now)
        self.deliver(st.dialer, resp, self.now, st.epoch, st.dest)

    def _stream_fail(self, st: _Stream, reason: str) -> None:
        if st.done:
            return
        st.done = True
        self.stream_failures += 1
        self._stream_trace("F", st.dest, st.dialer, self.now)
        self.deliver(st.dialer, StreamFailed(st.sid, reason), self.now, st.epoch)

    def _stream_deadline(self, st: _Stream) -> None:
        self._stream_fail(st, "i/o timeout")

    def _stream_trace(self, what: str, a: int, b: int, t: float) -> None:
        self._trace_line(f"{self._us(t)} s {what} {a} {b}")

    # ================================================================== member events

    def _member_event(self, o: int, ev: MemberEvent, t: float) -> None:
        s = self.index.get(ev.member.name)
        if s is None:
            return
        kind = ev.kind
        self._trace.append(
            f"{int(t * 1e6 + 0.5)} m {o} {s} {_EVENT_CODE[kind]} {ev.member.incarnation}"
        )
        self.metrics.member_event(t, o, s, kind, ev.member.incarnation, self._source)

    def _probe_window(self, o: int) -> float:
        """How long member ``o``'s probe that just ended can have run, at most: the probe
        interval scaled by its health score (see :mod:`swimpy.sim.metrics`)."""
        node = self.nodes[o]
        score = node.health_score if node is not None else 0
        return self.config_for(o).probe_interval * (score + 1)

    def _in_view(self, o: int, s: int) -> bool:
        node = self.nodes[o]
        if node is None:
            return False
        m = node.member(self.names[s])
        return m is not None and m.state in _IN_VIEW

    def _view_of(self, o: int) -> list[int]:
        node = self.nodes[o]
        if node is None:
            return []
        index = self.index
        return [index[m.name] for m in node.members() if m.name in index]

    # ================================================================== trace

    @staticmethod
    def _us(t: float) -> int:
        return int(t * 1e6 + 0.5)

    def _trace_line(self, line: str) -> None:
        self._trace.append(line)
        if len(self._trace) >= _TRACE_FLUSH:
            self._flush_trace()

    def _flush_trace(self) -> None:
        if self._trace:
            self._trace.append("")
            self._hash.update("\n".join(self._trace).encode())
            self._trace.clear()

    def trace_sha256(self) -> str:
        self._flush_trace()
        return self._hash.copy().hexdigest()

    # ================================================================== sampling

    def sample(self) -> None:
        """Record one point of the timeline (views, health) at the current time."""
        m = self.metrics
        active = m.active_set
        n_active = len(active)
        # every member, every sample (600 per run): one comprehension, sums in C
        scores = [node.health_score  # type: ignore[union-attr]
                  for node, up in zip(self.nodes, self.running, strict=True) if up]
        health = max(scores, default=0)
        n_run = len(scores)
        if n_run:
            self._health_sum += sum(scores) / n_run
            self._health_samples += 1
        self.health_max = max(self.health_max, health)
        if not self.timeline_enabled:
            return
        tl = self.timeline
        tl["t"].append(round(self.now, 6))
        tl["correct_fraction"].append(
            round(m.correct_views() / n_active, 6) if n_active else 1.0
        )
        tl["mismatches"].append(float(m.total))
        tl["mean_view"].append(
            round(sum(m.view_size[o] for o in active) / n_active, 3) if n_active else 0.0
        )
        tl["running"].append(float(n_active))
        tl["health_max"].append(float(health))

    # ================================================================== results

    def run(self, progress: Callable[[float, float], None] | None = None) -> dict[str, Any]:
        """Run to the scenario's end and return the result (see :meth:`result`)."""
        # Everything built so far (thousands of engines' tables) lives for the whole run:
        # park it outside the cyclic GC's generations while the run allocates, so full
        # collections do not traverse it again and again; hand it back afterwards.
        # The loop also allocates short-lived objects (inputs, actions, timers) by the
        # million and makes almost no cyclic garbage: collect the young generation less
        # often while it runs.
        thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(max(thresholds[0], _GC_YOUNG_THRESHOLD), *thresholds[1:])
        try:
            return self._run(progress)
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()

    def _run(self, progress: Callable[[float, float], None] | None) -> dict[str, Any]:
        end = self.end
        step = self.scenario.sample_interval or max(end / 600.0, 0.1)
        t = 0.0
        self.sample()
        while t < end:
            t = min(end, t + step)
            self.run_until(t)
            self.sample()
            if progress is not None:
                progress(t, end)
        return self.result()

    def result(self) -> dict[str, Any]:
        t = self.now
        m = self.metrics
        member_s = m.member_seconds_until(t)
        msgs = self.packets_sent + self.streams_sent
        byts = self.bytes_sent + self.stream_bytes_sent
        out: dict[str, Any] = {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "nodes": self.n,
            "profile": self.scenario.profile,
            "fidelity": self.fidelity,
            "simulated_seconds": round(t, 6),
            "wall_seconds": None,
            "convergence_s": m.convergence(t),
            "last_disruption_s": round(m.last_disruption, 6),
            "converged_at_end": m.total == 0,
            "detections": m.detections(),
            "groups": {g: self.members_text(ix) for g, ix in self._groups.items()},
            "events": [dict(p) for p in self.picks],
            "false_suspicions": m.false_suspicions,
            "false_deaths": m.false_deaths,
            "partition_suspicions": m.partition_suspicions,
            "partition_deaths": m.partition_deaths,
            "messages_per_node_per_s": round(msgs / member_s, 4) if member_s else 0.0,
            "bytes_per_node_per_s": round(byts / member_s, 2) if member_s else 0.0,
            "bytes_mode": "wire" if self.wire else "encoded-uncompressed",
            "packets": {
                "sent": self.packets_sent,
                "delivered": self.delivered,
                "dropped": dict(sorted(self.drops.items())),
                "bytes": self.bytes_sent,
            },
            "streams": {
                "sent": self.streams_sent,
                "failed": self.stream_failures,
                "bytes": self.stream_bytes_sent,
            },
            "health_score": {
                "max": self.health_max,
                "mean": round(self._health_sum / self._health_samples, 4)
                if self._health_samples
                else 0.0,
            },
            "events_processed": self.events_processed,
            "trace_sha256": self.trace_sha256(),
        }
        if self.timeline_enabled:
            out["timeline"] = {k: list(v) for k, v in self.timeline.items()}
            out["disruptions"] = [[round(dt, 6), what] for dt, what in m.disruptions]
        return out

    # ================================================================== checks (tests)

    def check_views(self) -> None:
        """Recompute the tracked views from the tables; raise if they disagree."""
        m = self.metrics
        total = 0
        for o in range(self.n):
            if m.active[o]:
                view = set(self._view_of(o))
                exp = {s for s in m.active_set if self.net.reachable(o, s)}
                mm = len(view ^ exp)
                if mm != m.mismatch[o]:
                    raise AssertionError(
                        f"t={self.now}: {self.names[o]} tracked mismatch {m.mismatch[o]} != {mm}"
                    )
                total += mm
        if total != m.total:
            raise AssertionError(f"t={self.now}: tracked total {m.total} != {total}")
