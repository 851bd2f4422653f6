"""``--snapshot PATH``: the members this agent knew, so a restarted agent rejoins them (as
``serf agent -snapshot``). A small JSON file, rewritten atomically when membership
changes (at most once a second); a graceful leave marks it so a restart does not rejoin.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable

import trio

from swimpy.core.member import Member, State

log = logging.getLogger("swimpy.agent")

MIN_INTERVAL = 1.0


class Snapshot:
    """``record`` notes the latest view; ``run`` (a task) writes it at most once a second,
    and ``flush`` writes what is pending at once (at shutdown)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pending: dict[str, str] | None = None
        self._wake = trio.Event()
        self._left = False

    def _read(self) -> dict[str, object]:
        try:
            with open(self.path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("agent: ignoring the unreadable snapshot %s: %s", self.path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def rejoin_addresses(self, exclude: str) -> list[str]:
        data = self._read()
        if data.get("left"):
            return []
        members = data.get("alive")
        if not isinstance(members, dict):
            return []
        return [addr for name, addr in sorted(members.items())
                if name != exclude and isinstance(addr, str)]

    def record(self, members: Iterable[Member]) -> None:
        self._pending = {
            m.name: (f"[{m.addr}]:{m.port}" if ":" in m.addr else f"{m.addr}:{m.port}")
            for m in members if m.state in (State.ALIVE, State.SUSPECT)}
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            self.flush()
            await trio.sleep(MIN_INTERVAL)

    def flush(self) -> None:
        if self._pending is not None:
            alive, self._pending = self._pending, None
            self._write({"alive": alive, "left": self._left})

    def mark_left(self) -> None:
        """A graceful leave: a restarted agent must not rejoin on its own."""
        self._left = True
        self.flush()
        data = self._read()
        data["left"] = True
        self._write(data)

    def _write(self, data: dict[str, object]) -> None:
        tmp = f"{self.path}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("agent: cannot write the snapshot %s: %s", self.path, exc)
