"""Anti-entropy and joining: push/pull of whole member tables over TCP, periodically with
one random member and on join with each seed (memberlist state.go ``pushPull``,
``mergeRemoteState``, ``verifyProtocol``; net.go ``sendAndReceiveState``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from swimpy.core.actions import JoinCompleted
from swimpy.core.addresses import ip_text
from swimpy.core.delegate import Hooks
from swimpy.core.inputs import ConnId, StreamId
from swimpy.core.lifeguard import push_pull_scale
from swimpy.core.member import Address, Member, State
from swimpy.core.members import Members, RemoteEntry
from swimpy.core.net import Completed, Net, Purpose
from swimpy.core.outbox import Outbox
from swimpy.core.timers import PUSH_PULL_TICK
from swimpy.profiles import Config
from swimpy.wire.stream import PushPull

log = logging.getLogger("swimpy.core")

_VSN = attrgetter("vsn")


@dataclass(slots=True)
class _Join:
    #: streams still open, with the address each went to (error lines name it)
    pending: dict[StreamId, Address] = field(default_factory=dict)
    contacted: int = 0
    errors: list[str] = field(default_factory=list)
    #: False for Serf's reconnect attempts: nobody waits for them
    report: bool = True


class PushPullSync:
    def __init__(self, config: Config, outbox: Outbox, members: Members, net: Net,
                 hooks: Hooks) -> None:
        self.config = config
        self._out = outbox
        self._members = members
        self._net = net
        self._hooks = hooks
        self._joins: dict[int, _Join] = {}
        self._internal_ref = 0

    # ------------------------------------------------------------------ our state

    def _local(self, join: bool) -> tuple[list[Member], bytes]:
        user = bytes(self._hooks.call("local_state", b"", join))
        return self._members.table.records(), user

    # ------------------------------------------------------------------ periodic

    def start(self, now: float, stagger: float) -> None:
        c = self.config
        if c.push_pull_interval > 0:
            at = now + stagger + push_pull_scale(c.push_pull_interval, self._members.num_nodes)
            self._out.timer(PUSH_PULL_TICK, at)

    def tick(self, now: float) -> None:
        c = self.config
        self._out.timer(PUSH_PULL_TICK,
                        now + push_pull_scale(c.push_pull_interval, self._members.num_nodes))
        me = c.name
        peers = self._members.k_random(1, lambda m: m.name != me and m.state == State.ALIVE)
        if not peers:
            return
        self._out.stats["push_pulls"] += 1
        members, user = self._local(False)
        data, size = self._net.push_pull(False, members, user, dialer=True)
        self._net.open_stream(Purpose.PUSH_PULL, 0, peers[0].address, data, size,
                              c.tcp_timeout, True)

    # ------------------------------------------------------------------ joining

    def join(self, addresses: Sequence[Address], request_id: int | None) -> None:
        """Push/pull with every address; ``request_id`` None for an internal attempt
        (Serf's reconnect), which reports nothing."""
        if request_id is None:
            self._internal_ref -= 1
            ref = self._internal_ref
        else:
            ref = request_id
        j = _Join(report=request_id is not None)
        self._joins[ref] = j
        for addr in addresses:
            members, user = self._local(True)
            data, size = self._net.push_pull(True, members, user, dialer=True)
            sid = self._net.open_stream(Purpose.JOIN, ref, addr, data, size,
                                        self.config.tcp_timeout, True)
            if sid is None:
                j.errors.append(f"{_show(addr)}: too many open streams")
            else:
                j.pending[sid] = addr
        self._maybe_finish(ref)

    def _maybe_finish(self, ref: int) -> None:
        j = self._joins.get(ref)
        if j is None or j.pending:
            return
        del self._joins[ref]
        if j.report:
            self._out.actions.append(JoinCompleted(ref, j.contacted, tuple(j.errors)))

    # ------------------------------------------------------------------ replies

    def completed(self, done: Completed, now: float) -> None:
        """A push/pull or join stream we opened finished."""
        err = done.error
        if err is None:
            msg = done.message
            if isinstance(msg, PushPull):
                err = self.merge_remote(msg, done.purpose is Purpose.JOIN, now)
            else:
                err = "reply is not a push/pull"
                self._net.stream_error(done.purpose, err)
        if done.purpose is not Purpose.JOIN:
            return
        j = self._joins.get(done.ref)
        if j is None:
            return
        addr = j.pending.pop(done.stream_id, None)
        if err is None:
            j.contacted += 1
        else:
            j.errors.append(err if addr is None else f"{_show(addr)}: {err}")
        self._maybe_finish(done.ref)

    def on_request(self, conn: ConnId, pp: PushPull, now: float) -> None:
        """A peer's push/pull: answer with ours, then merge theirs (``handleConn``)."""
        members, user = self._local(pp.join)
        self._net.reply_push_pull(conn, pp.join, members, user)
        self.merge_remote(pp, pp.join, now)

    # ------------------------------------------------------------------ merging

    def merge_remote(self, pp: PushPull, join: bool, now: float) -> str | None:
        """``mergeRemoteState``: verify versions, consult the merge delegate, merge."""
        nodes: Sequence[RemoteEntry] = pp.nodes
        err = self._verify_protocol(nodes)
        if err is not None:
            self._out.stats["push_pull_rejected_version"] += 1
            log.warning("%s: failed push/pull merge: %s", self.config.name, err)
            return err
        if join and self._hooks.notify_merge is not None:
            peers = []
            for r in nodes:
                host = ip_text(r.ip_bytes)
                if host is not None:
                    peers.append(Member(r.name, host, r.port, r.meta, r.incarnation,
                                        _state_or_dead(r.state), now, r.vsn, r.ip_bytes))
            if not self._hooks.call("notify_merge", False, peers):
                self._out.stats["push_pull_vetoed"] += 1
                return "merge canceled by the delegate"
        self._members.merge_state(nodes, now)
        if pp.user_state:
            self._hooks.call("merge_remote_state", None, pp.user_state, join)
        return None

    def _verify_protocol(self, remote: Sequence[RemoteEntry]) -> str | None:
        """memberlist ``verifyProtocol``: None if compatible, else the reason.

        As in Go, alive entries without versions are left out of the ranges, and every
        entry is then checked with missing versions read as 0. Works on the distinct
        version vectors, so thousands of members with a few versions cost little.
        """
        alive = State.ALIVE
        local = self._members.table.records()
        every = set(map(_VSN, remote))
        every.update(map(_VSN, local))
        if len(every) == 1:
            # one version vector for everyone (the usual case): the alive versions are
            # that one if there is an alive entry at all, without a pass over both lists
            (v,) = every
            alive_vsns = every if v and (any(r.state == alive for r in remote)
                                         or any(m.state == alive for m in local)) else set()
        else:
            alive_vsns = {m.vsn for m in local if m.state == alive and m.vsn}
            alive_vsns.update(r.vsn for r in remote if r.state == alive and r.vsn)
        if not alive_vsns:
            return None
        padded = [_vsn6(v) for v in alive_vsns]
        maxpmin = max(v[0] for v in padded)
        minpmax = min(v[1] for v in padded)
        maxdmin = max(v[3] for v in padded)
        mindmax = min(v[4] for v in padded)
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


def _vsn6(v: bytes) -> bytes:
    """A version vector padded with zeros to its six entries (missing = 0, as in Go)."""
    return v if len(v) >= 6 else v + bytes(6 - len(v))


def _state_or_dead(v: int) -> State:
    try:
        return State(v)
    except ValueError:
        return State.DEAD


def _show(addr: Address) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"
