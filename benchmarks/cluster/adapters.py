"""One adapter per system, so ``bench_cluster.py`` runs swimpy agents, Serf agents and
kinship members through the same measurement code.

A :class:`System` knows the command line of one member and how to read its output lines
(:mod:`cluster.events`); a :class:`Member` is one such process: start (optionally joining
seeds), SIGKILL, restart under the same name and ports, stop by PID. Every member's
stdout and stderr go to one pipe drained by a reader thread that stamps each line with
``time.monotonic()`` on arrival, appends it to the member's log file and feeds parsed
events into the shared :class:`EventLog`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from procstat import stop_process

from cluster.events import ALIVE, DEAD, JOINED, LEFT, PARSERS, SUSPECT, Event

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
#: SIGTERM, then SIGKILL after this many seconds
KINSHIP_DRIVER = Path(__file__).resolve().parent / "kinship_member.py"


@dataclass(frozen=True)
class System:
    """How to run one member of a system: ``command(name, port, rpc_port, seeds)``, a
    marker in its output meaning it is up, and the line parser."""

    name: str
    command: Callable[[str, int, int, Sequence[str]], list[str]]
    ready_marker: str
    rpc: bool  # needs a control (RPC) port

    def parse(self, line: str, t: float, observer: str) -> Event | None:
        return PARSERS[self.name.split("-")[0]](line, t, observer)


def _swimpy_cmd(name: str, port: int, rpc: int, seeds: Sequence[str]) -> list[str]:
    cmd = [sys.executable, "-m", "swimpy", "agent", "--node", name, "--profile", "lan",
           "--bind", f"{HOST}:{port}", "--rpc-addr", f"{HOST}:{rpc}", "--log-level", "info"]
    for s in seeds:
        cmd += ["--join", s]
    return cmd


def _serf_cmd(name: str, port: int, rpc: int, seeds: Sequence[str],
              config: Path | None = None) -> list[str]:
    # serf agent's defaults are memberlist's DefaultLANConfig (serf.DefaultConfig)
    cmd = ["serf", "agent", f"-node={name}", f"-bind={HOST}:{port}",
           f"-rpc-addr={HOST}:{rpc}", "-log-level=info"]
    if config is not None:
        cmd.append(f"-config-file={config}")
    cmd += [f"-join={s}" for s in seeds]
    return cmd


def _kinship_cmd(name: str, port: int, rpc: int, seeds: Sequence[str]) -> list[str]:
    cmd = [sys.executable, str(KINSHIP_DRIVER), "--name", name, "--bind", f"{HOST}:{port}"]
    for s in seeds:
        cmd += ["--seed", s]
    return cmd


SWIMPY = System("swimpy", _swimpy_cmd, "running; control API", rpc=True)
SERF = System("serf", _serf_cmd, "Serf agent running", rpc=True)
KINSHIP = System("kinship", _kinship_cmd, "READY ", rpc=False)
SYSTEMS = {s.name: s for s in (SWIMPY, SERF, KINSHIP)}


class EventLog:
    """Membership events of one cluster, from all its members' reader threads, with each
    member's current view (reset when the member restarts)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.views: dict[str, dict[str, str]] = {}
        self.cond = threading.Condition()

    def add(self, ev: Event) -> None:
        with self.cond:
            self.events.append(ev)
            view = self.views.setdefault(ev.observer, {})
            if ev.kind in (JOINED, ALIVE):
                view[ev.subject] = "alive"
            elif ev.kind == SUSPECT:
                # Serf reports no refutation; its view only tracks join and failure.
                if view.get(ev.subject) == "alive" and not ev.observer.startswith("serf"):
                    view[ev.subject] = "suspect"
            elif ev.kind == DEAD:
                view[ev.subject] = "dead"
            elif ev.kind == LEFT:
                view[ev.subject] = "left"
            self.cond.notify_all()

    def reset_view(self, observer: str) -> None:
        with self.cond:
            self.views[observer] = {}

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Wait (on the condition, no polling) until ``predicate()`` holds, called with the
        lock held; the monotonic time it first held. ``TimeoutError`` at the deadline."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
                self.cond.wait(min(left, 1.0))
            return time.monotonic()

    def all_alive(self, names: Sequence[str]) -> bool:
        """Every member sees every other alive (call with the lock held)."""
        for o in names:
            view = self.views.get(o, {})
            for s in names:
                if s != o and view.get(s) != "alive":
                    return False
        return True

    def since(self, t: float) -> list[Event]:
        with self.cond:
            return [e for e in self.events if e.t >= t]


class Member:
    """One member process of a :class:`System`."""

    def __init__(self, system: System, name: str, port: int, rpc_port: int, log_dir: Path,
                 events: EventLog) -> None:
        self.system = system
        self.name = name
        self.port = port
        self.rpc_port = rpc_port
        self.log_path = log_dir / f"{name}.log"
        self.events = events
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_at: float | None = None
        self.starts = 0
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, seeds: Sequence[str] = ()) -> Member:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.join_reader()
        cmd = self.system.command(self.name, self.port, self.rpc_port, seeds)
        self.starts += 1
        self.events.reset_view(self.name)
        self._ready.clear()
        self.ready_at = None
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the reader thread
        log.write(f"=== start #{self.starts} at {self.started_at:.6f}: {' '.join(cmd)}\n"
                  .encode())
        self._reader = threading.Thread(target=self._read, args=(self.proc, log),
                                        name=f"read-{self.name}", daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                t = time.monotonic()
                line = raw.decode(errors="replace").rstrip("\n")
                log.write(f"{t:.6f} {line}\n".encode())
                if not self._ready.is_set() and self.system.ready_marker in line:
                    self.ready_at = t
                    self._ready.set()
                ev = self.system.parse(line, t, self.name)
                if ev is not None and ev.subject != self.name:
                    self.events.add(ev)
        finally:
            log.close()
            proc.stdout.close()

    def join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None

    def wait_ready(self, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready after {timeout:g} s:\n"
                                   f"{self.log_tail()}")
        assert self.ready_at is not None
        return self.ready_at

    def kill(self) -> float:
        """SIGKILL by PID; the monotonic time just before the signal."""
        assert self.proc is not None
        t = time.monotonic()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.join_reader()
        return t

    def stop(self) -> None:
        """SIGTERM (a graceful leave), SIGKILL after ``TERM_TIMEOUT``; idempotent."""
        if self.proc is not None:
            stop_process(self.proc)
        self.join_reader()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""
