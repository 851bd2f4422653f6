"""Serf's memory of members that failed or left (serf.go ``reap``, ``reconnect``).

memberlist forgets dead members after GossipToTheDeadTime; Serf keeps failed members for
``reconnect_timeout`` and tries to reach them again, and keeps left members as tombstones
for ``tombstone_timeout``. That reconnect loop is what merges a cluster split by a
partition once the network heals, so it lives in the engine and the simulator has it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from swimpy.core.member import EventKind, Member
from swimpy.core.outbox import Outbox
from swimpy.core.timers import REAP_TICK, RECONNECT_TICK
from swimpy.profiles import Config


class Retention:
    def __init__(self, config: Config, outbox: Outbox, rng: random.Random) -> None:
        self.config = config
        self._out = outbox
        self._rng = rng
        #: name -> (record, since)
        self.failed_members: dict[str, tuple[Member, float]] = {}
        self.left_members: dict[str, tuple[Member, float]] = {}
        #: changes whenever a member is retained or forgotten (snapshots cache on it)
        self.version = 0

    # ------------------------------------------------------------------ from the table

    def failed(self, m: Member, now: float) -> None:
        self.failed_members[m.name] = (m, now)
        self.version += 1

    def left(self, m: Member, now: float) -> None:
        self.left_members[m.name] = (m, now)
        self.failed_members.pop(m.name, None)
        self.version += 1

    def back(self, name: str) -> None:
        was_failed = self.failed_members.pop(name, None)
        was_left = self.left_members.pop(name, None)
        if was_failed is not None or was_left is not None:
            self.version += 1

    # ------------------------------------------------------------------ loops

    def start(self, now: float, reap_stagger: float, reconnect_stagger: float) -> None:
        # Serf starts these loops unstaggered; a random phase keeps a cluster that
        # started together from reconnecting in lock-step after a partition heals.
        c = self.config
        self._out.timer(REAP_TICK, now + reap_stagger + c.reap_interval)
        self._out.timer(RECONNECT_TICK, now + reconnect_stagger + c.reconnect_interval)

    def reap(self, now: float) -> None:
        c = self.config
        self._out.timer(REAP_TICK, now + c.reap_interval)
        for store, timeout in (
            (self.failed_members, c.reconnect_timeout),
            (self.left_members, c.tombstone_timeout),
        ):
            for name, (m, since) in list(store.items()):
                if now - since > timeout:
                    del store[name]
                    self.version += 1
                    self._out.stats["reaped"] += 1
                    self._out.emit(EventKind.REAPED, m)

    def reconnect_target(self, now: float, table: Mapping[str, Member],
                         leaving: bool) -> Member | None:
        """Serf ``reconnect``: on average one attempt per failed member per interval
        across the cluster: probability = failed / alive. Returns whom to try."""
        self._out.timer(RECONNECT_TICK, now + self.config.reconnect_interval)
        failed = self.failed_members
        if not failed or leaving:
            return None
        n_failed = len(failed)
        # alive or suspect = table size minus the dead/left entries still in it; those
        # are all retained in failed/left, so this costs O(failed + left), not O(n).
        gone = sum(1 for name in failed if name in table)
        gone += sum(1 for name in self.left_members if name in table)
        n_alive = len(table) - gone
        prob = n_failed / max(1, n_alive)
        if self._rng.random() > prob:
            return None
        names = sorted(failed)
        m, _ = failed[names[self._rng.randrange(len(names))]]
        self._out.stats["reconnect_attempts"] += 1
        return m
