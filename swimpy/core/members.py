"""The member table and the rules that change it: memberlist's ``aliveNode``,
``suspectNode``, ``deadNode``, ``refute`` and ``mergeState`` (state.go; LIFEGUARD.md §6
and §8). Everything that changes a member's state happens in this file (h11's "one
place holds the state rules"); the other mechanisms call in here.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from operator import attrgetter
from typing import Protocol

from swimpy.core.addresses import AddressFilter, ip_text
from swimpy.core.delegate import Hooks
from swimpy.core.lifeguard import Awareness, Suspicion, expected_confirmations, suspicion_timeout
from swimpy.core.member import EventKind, Member, State
from swimpy.core.outbox import Outbox
from swimpy.core.table import MemberBase, MemberTable, ProbeOrder
from swimpy.core.timers import SuspicionTimeout
from swimpy.profiles import Config
from swimpy.wire.messages import Alive, Dead, PacketMessage, Suspect

log = logging.getLogger("swimpy.core")

_U32 = 0xFFFFFFFF
_NAME = attrgetter("name")
#: the length of a full version vector [pmin, pmax, pcur, dmin, dmax, dcur]
VSN_LEN = 6


class Broadcaster(Protocol):
    """Where state changes are queued for dissemination (``gossip.Gossip``)."""

    def broadcast(self, name: str | None, msg: PacketMessage, notify: int | None = None) -> None:
        ...


class RetentionLog(Protocol):
    """Serf's memory of failed and left members (``retention.Retention``)."""

    def failed(self, m: Member, now: float) -> None: ...

    def left(self, m: Member, now: float) -> None: ...

    def back(self, name: str) -> None: ...


class RemoteEntry(Protocol):
    """One member in a peer's push/pull: a ``PushNodeState`` off the wire, or (object
    codec) the peer's own :class:`Member` record."""

    @property
    def name(self) -> str: ...
    @property
    def ip_bytes(self) -> bytes: ...
    @property
    def port(self) -> int: ...
    @property
    def meta(self) -> bytes: ...
    @property
    def incarnation(self) -> int: ...
    @property
    def state(self) -> int: ...
    @property
    def vsn(self) -> bytes: ...


class Members:
    """The table of one engine: records by name, the probe order, open suspicions, our
    incarnation. ``version`` changes whenever a record changes (snapshots cache on it).

    ``table`` may share most of its records with other engines' tables and ``order`` is
    drawn as it goes instead of stored (see :mod:`swimpy.core.table`); both read like
    memberlist's ``nodeMap`` and ``nodes``."""

    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        rng: random.Random,
        hooks: Hooks,
        awareness: Awareness,
        gossip: Broadcaster,
        retention: RetentionLog,
        addresses: AddressFilter,
        advertise_port: int,
    ) -> None:
        self.config = config
        self._advertise_port = advertise_port
        self.name = config.name
        self._out = outbox
        self._rng = rng
        self._hooks = hooks
        self._awareness = awareness
        self._gossip = gossip
        self._retention = retention
        self._addresses = addresses
        self.table = MemberTable()
        #: probe order (memberlist's ``nodes`` slice and ``probeIndex``): every table
        #: entry once per round
        self.order = ProbeOrder(self.table, rng)
        self.suspicions: dict[str, Suspicion] = {}
        self._suspicion_generation = 0
        self.incarnation = 0
        self.leaving = False
        self.version = 0
        #: alive messages about a member we already have at that incarnation and address
        #: (a plain int: every member receives ~n x retransmit-limit of them in a forming
        #: cluster, so even a Counter update shows in profiles)
        self.alive_duplicates = 0
        #: copies of known alives can be answered before any other check (see on_alive):
        #: no alive delegate to consult, ports carried on the wire, no CIDR filter
        self._plain_alives = (
            hooks.notify_alive is None and config.protocol_version >= 2 and not config.cidrs_allowed
        )

    # ------------------------------------------------------------------ queries

    @property
    def num_nodes(self) -> int:
        """memberlist's ``numNodes``: every entry of the table, self, dead and left included."""
        return self.table.size

    def any_alive_peer(self) -> bool:
        """memberlist ``anyAlive``: a peer that is neither dead nor left (suspect counts)."""
        me = self.name
        return any(
            m.state in (State.ALIVE, State.SUSPECT) and m.name != me for m in self.table.values()
        )

    def k_random(self, k: int, ok: Callable[[Member], bool]) -> list[Member]:
        """``kRandomNodes``; [UPSTREAM v0.6.0] exhaustive shuffle when n < 3k (see
        :meth:`MemberTable.k_random`)."""
        return self.table.k_random(k, ok, self._rng)

    def _set(self, m: Member) -> None:
        self.table.set(m)
        self.version += 1

    # ------------------------------------------------------------------ table upkeep

    def bootstrap(self, records: Iterable[Member] | MemberBase) -> None:
        """Pre-fill the table as if the cluster had converged (see ``Engine.bootstrap_members``)."""
        base = records if isinstance(records, MemberBase) else MemberBase(records)
        self.table.bootstrap(base, without=self.name)
        self.order.restart()
        self.version += 1

    def reset_nodes(self, now: float) -> None:
        """``resetNodes``: forget dead [UPSTREAM v0.3.1: and left] members past
        GossipToTheDeadTime, then start a new round of the probe order (a new shuffle)."""
        gttd = self.config.gossip_to_the_dead_time

        def forget(m: Member) -> bool:
            return m.state in (State.DEAD, State.LEFT) and now - m.state_change > gttd

        reaped = self.table.reap(forget)
        if reaped:
            for name in reaped:
                self.suspicions.pop(name, None)
            self._out.stats["reaped_from_table"] += len(reaped)
            self.version += len(reaped)
        self.order.restart()

    # ------------------------------------------------------------------ alive

    def on_alive(self, a: Alive, now: float) -> None:
        """An alive message from the network (``handleAlive``)."""
        state = self.table.get(a.node)
        if (
            state is not None
            and a.incarnation <= state.incarnation
            and a.addr == state.ip_bytes
            and a.port == state.port
            and a.vsn == state.vsn
            and self._plain_alives
            and a.node != self.name
        ):
            # The common case in a forming or healing cluster: a copy of an alive we
            # already hold. aliveNode would come to "ignore" after the same checks (the
            # stored address and versions passed them when stored).
            self.alive_duplicates += 1
            return
        host = ip_text(a.addr)
        if host is None:
            self._out.drop("malformed", f"alive for {a.node!r} with a {len(a.addr)}-byte address")
            return
        if not self._addresses.allows(host):
            self._out.drop("cidr", f"alive for {a.node!r} from {host} outside cidrs_allowed")
            return
        self.alive_node(a, now)

    def alive_node(
        self, a: Alive, now: float, *, bootstrap: bool = False, notify: int | None = None
    ) -> None:
        """memberlist ``aliveNode`` (LIFEGUARD §8.1): the one place alive is merged."""
        state = self.table.get(a.node)
        is_local = a.node == self.name
        host = self._check_alive(a, is_local)
        if host is None:
            return
        port = a.port
        if not bootstrap and (port == 0 or self.config.protocol_version < 2):
            # handleAlive / readRemoteState: protocol 1 carried no port; use our BindPort
            port = self.config.bind_port or self._advertise_port
        if not is_local and not self._alive_delegate_allows(a, host, port, now):
            return
        fresh = state is None
        updates_node = False
        if state is None:
            state = self._new_entry(a, host, port, now)
            if state is None:
                return
        elif state.addr != host or state.port != port:
            verdict = self._address_change(state, a, host, port, now)
            if verdict is None:
                return
            updates_node = verdict
        # A fresh entry starts dead at incarnation 0, so (as in memberlist) an alive at
        # incarnation 0 leaves it dead; Go nodes never send one.
        if a.incarnation <= state.incarnation and not is_local and not updates_node:
            return
        if not fresh and a.incarnation < state.incarnation and is_local:
            return
        self.suspicions.pop(a.node, None)
        if not bootstrap and is_local:
            if a.incarnation == state.incarnation and a.meta == state.meta and a.vsn == state.vsn:
                return
            self.refute(a.incarnation)
            return
        self._gossip.broadcast(a.node, a, notify)
        self._record_alive(state, a, host, port, now)

    def _check_alive(self, a: Alive, is_local: bool) -> str | None:
        """The address text of a usable alive, or None (dropped or ignored)."""
        if not a.node:
            self._out.drop("malformed", "alive with an empty node name")
            return None
        if self.leaving and is_local:
            return None
        vsn = a.vsn
        if len(vsn) >= 3 and (vsn[0] == 0 or vsn[1] == 0 or vsn[0] > vsn[1]):
            self._out.drop("bad_version", f"alive for {a.node!r} with versions {list(vsn)}")
            return None
        host = ip_text(a.addr)
        if host is None:
            self._out.drop("malformed", f"alive for {a.node!r} with a bad address")
        return host

    def _alive_delegate_allows(self, a: Alive, host: str, port: int, now: float) -> bool:
        if self._hooks.notify_alive is None:
            return True
        if len(a.vsn) < VSN_LEN:
            # memberlist refuses short version vectors when an Alive delegate is set
            self._out.drop("bad_version", f"alive for {a.node!r} without a full Vsn")
            return False
        candidate = Member(a.node, host, port, a.meta, a.incarnation, State.ALIVE, now, a.vsn,
                           a.addr)
        if not self._hooks.call("notify_alive", False, candidate):
            self._out.drop("alive_filtered", f"alive for {a.node!r} refused by the delegate")
            return False
        return True

    def _new_entry(self, a: Alive, host: str, port: int, now: float) -> Member | None:
        if not self._addresses.allows(host):
            self._out.drop("cidr", f"alive for {a.node!r} at {host} outside cidrs_allowed")
            return None
        # New members start dead and turn alive in _record_alive, so the first alive is a
        # join; they go to a random position of the probe order.
        m = Member(a.node, host, port, a.meta, 0, State.DEAD, now, a.vsn, a.addr)
        self._set(m)
        self.order.added(a.node)
        return m

    def _address_change(
        self, state: Member, a: Alive, host: str, port: int, now: float
    ) -> bool | None:
        """Another address claims a known name: True if it may take the name over (the
        member left, or is dead past DeadNodeReclaimTime), None if it is a conflict."""
        if not self._addresses.allows(host):
            self._out.drop("cidr", f"alive for {a.node!r} at {host} outside cidrs_allowed")
            return None
        reclaim = self.config.dead_node_reclaim_time
        can_reclaim = reclaim > 0 and now - state.state_change > reclaim
        if state.state == State.LEFT or (state.state == State.DEAD and can_reclaim):
            return True
        other = Member(a.node, host, port, a.meta, a.incarnation, State.ALIVE, now, a.vsn, a.addr)
        self._out.stats["name_conflicts"] += 1
        log.warning(
            "%s: conflicting address for %s: %s:%d claims it, %s:%d has it",
            self.name, a.node, host, port, state.addr, state.port,
        )
        self._hooks.call("notify_conflict", None, state, other)
        return None

    def _record_alive(self, state: Member, a: Alive, host: str, port: int, now: float) -> None:
        old_state, old_meta = state.state, state.meta
        vsn = a.vsn if len(a.vsn) >= VSN_LEN else state.vsn
        change = state.state_change if state.state == State.ALIVE else now
        m = Member(a.node, host, port, a.meta, a.incarnation, State.ALIVE, change, vsn, a.addr)
        self._set(m)
        if a.node == self.name:
            self.incarnation = max(self.incarnation, a.incarnation)
        if old_state in (State.DEAD, State.LEFT):
            self._retention.back(a.node)
            self._out.emit(EventKind.JOINED, m)
            return
        if old_state == State.SUSPECT:
            self._out.emit(EventKind.REFUTED, m)
        if old_meta != a.meta:
            self._out.emit(EventKind.UPDATED, m)

    def refute(self, accused: int) -> None:
        """Answer an accusation about ourselves with a higher incarnation (``refute``)."""
        inc = (self.incarnation + 1) & _U32
        if accused >= inc:
            inc = (accused + 1) & _U32
        self.incarnation = inc
        me = replace(self.table[self.name], incarnation=inc, state=State.ALIVE)
        self._set(me)
        self._awareness.apply_delta(1)
        self._out.stats["refutations"] += 1
        # memberlist names this broadcast by our address string (a harmless quirk); we name
        # it by our node name so a newer refutation replaces an older one in the queue.
        self._gossip.broadcast(
            self.name, Alive(inc, me.name, me.ip_bytes, me.port, me.meta, me.vsn)
        )

    def bump_incarnation(self) -> int:
        """A new incarnation for our own update (``UpdateNode``)."""
        self.incarnation = (self.incarnation + 1) & _U32
        return self.incarnation

    # ------------------------------------------------------------------ suspect

    def suspect_node(self, s: Suspect, now: float) -> None:
        """memberlist ``suspectNode`` (LIFEGUARD §6.1)."""
        state = self.table.get(s.node)
        if state is None:
            # memberlist ignores news about members it does not know
            self._out.ignore("suspect_unknown_member")
            return
        if s.incarnation < state.incarnation:
            return
        sus = self.suspicions.get(s.node)
        if sus is not None:
            if sus.confirm(s.from_node, now):
                self._out.stats["suspicion_confirmations"] += 1
                self._gossip.broadcast(s.node, s)
                self._arm(s.node, max(now, sus.deadline))
            return
        if state.state != State.ALIVE:
            return
        if s.node == self.name:
            self.refute(s.incarnation)
            return
        self._gossip.broadcast(s.node, s)
        self._out.stats["suspicions"] += 1
        m = replace(state, incarnation=s.incarnation, state=State.SUSPECT, state_change=now)
        self._set(m)
        n = self.num_nodes
        c = self.config
        k = expected_confirmations(c.suspicion_mult, n)
        lo = suspicion_timeout(c.suspicion_mult, n, c.probe_interval)
        hi = c.suspicion_max_timeout_mult * lo
        sus = Suspicion(s.from_node, k, lo, hi, now)
        self.suspicions[s.node] = sus
        self._arm(s.node, sus.deadline)
        self._out.emit(EventKind.SUSPECT, m)

    def _arm(self, name: str, at: float) -> None:
        """(Re)arm the suspicion timer of ``name``; earlier timers of it become stale."""
        self._suspicion_generation += 1
        sus = self.suspicions[name]
        sus.generation = self._suspicion_generation
        self._out.timer(SuspicionTimeout(name, sus.generation), at)

    def suspicion_due(self, timer: SuspicionTimeout, now: float) -> None:
        """A suspicion timer fired. The current one takes effect even if delivered a
        little before its deadline (drivers may fire early by their clock resolution);
        stale ones (refuted, re-armed, or a new suspicion since) are ignored."""
        sus = self.suspicions.get(timer.name)
        if sus is None or sus.generation != timer.generation:
            return
        m = self.table.get(timer.name)
        if m is None or m.state != State.SUSPECT:
            self.suspicions.pop(timer.name, None)
            return
        log.info(
            "%s: marking %s as failed, suspect timeout reached (%d peer confirmations)",
            self.name, timer.name, sus.confirmations,
        )
        self.dead_node(Dead(m.incarnation, timer.name, self.name), now)

    # ------------------------------------------------------------------ dead

    def dead_node(self, d: Dead, now: float, notify: int | None = None) -> None:
        """memberlist ``deadNode`` (LIFEGUARD §6.3). A dead message from the member
        itself means it left."""
        state = self.table.get(d.node)
        if state is None:
            self._out.ignore("dead_unknown_member")
            return
        if d.incarnation < state.incarnation:
            return
        self.suspicions.pop(d.node, None)
        if state.state in (State.DEAD, State.LEFT):
            return
        is_local = d.node == self.name
        if is_local and not self.leaving:
            self.refute(d.incarnation)
            return
        self._gossip.broadcast(d.node, d, notify if is_local else None)
        new = State.LEFT if d.node == d.from_node else State.DEAD
        m = replace(state, incarnation=d.incarnation, state=new, state_change=now)
        self._set(m)
        if is_local:
            return
        if new == State.LEFT:
            self._retention.left(m, now)
            self._out.emit(EventKind.LEFT, m)
        else:
            self._retention.failed(m, now)
            self._out.emit(EventKind.DEAD, m)

    # ------------------------------------------------------------------ push/pull merge

    def merge_state(self, remote: Sequence[RemoteEntry], now: float) -> None:
        """memberlist ``mergeState`` (LIFEGUARD §8.2): never trust a remote 'dead'."""
        table = self.table
        me = self.name
        # Every name looked up at once (in C). The merge rules for an entry change only
        # that member's record (and our own, refuting), so a lookup holds unless its
        # member went through the rules already (a sender may list a member twice); our
        # own entry always does. A push/pull between two quiet members changes little,
        # and in the simulator most entries are our very records.
        current = table.get_many(map(_NAME, remote))
        touched: set[str] = set()
        for r, cur in zip(remote, current, strict=True):
            st = r.state
            name = r.name
            if st == State.ALIVE:
                if name in touched:
                    cur = table.get(name)
                raw = r.ip_bytes
                if (
                    cur is not None
                    and (cur is r or (r.incarnation <= cur.incarnation
                                      and cur.port == r.port
                                      and cur.ip_bytes == raw))
                    and name != me
                ):
                    continue  # aliveNode would ignore it
                touched.add(name)
                self.alive_node(Alive(r.incarnation, name, raw, r.port, r.meta, r.vsn), now)
            elif st == State.LEFT:
                touched.add(name)
                self.dead_node(Dead(r.incarnation, name, name), now)
            elif st in (State.DEAD, State.SUSPECT):
                touched.add(name)
                self.suspect_node(Suspect(r.incarnation, name, me), now)
            else:
                self._out.drop("malformed", f"push/pull entry {r.name!r} with state {st}")
