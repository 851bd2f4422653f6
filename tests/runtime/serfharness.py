"""Running real Go ``serf agent`` processes next to swimpy nodes in tests (loopback only).

A helper module, not a test file. The rules it keeps for every test that uses it:

* no fixed sleeps: everything waits on a condition with a deadline (:func:`wait_until`);
* every process is started through a :class:`ProcessRegistry` (the ``procs`` fixture in
  ``tests/runtime/conftest.py``) and stopped by its PID when the test ends, failed or not;
* each process writes stdout and stderr to its own log file under the test's ``tmp_path``,
  and a timeout names what it waited for and shows what it saw.

Typical use::

    @requires_serf
    def test_something(procs: ProcessRegistry) -> None:
        a = procs.serf_agent("a", tags={"role": "ra"})
        b = procs.serf_agent("b")
        b.join(a.address)
        wait_for_status([a, b], ["a", "b"], "alive", timeout=10)

The ``serf`` binary is Debian's ``serf 0.9.4`` (memberlist 0.2.2) although ``serf version``
prints ``v0.8.2-dev``; see ``shared/spec/SERF_PEER.md`` for hand-run sessions and timings.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, TypedDict, TypeVar

import pytest

__all__ = [
    "ProcessRegistry",
    "SerfAgent",
    "SerfAgentExited",
    "SerfCommandError",
    "SerfMember",
    "Stoppable",
    "free_port",
    "free_ports",
    "requires_serf",
    "serf_keygen",
    "stop_process",
    "wait_for_status",
    "wait_until",
]

#: skip marker for tests that need the ``serf`` binary
requires_serf = pytest.mark.skipif(
    shutil.which("serf") is None, reason="serf is not installed (apt-get install serf)"
)

#: how long a ``serf`` CLI command (members, join, leave, keygen) may take
CLI_TIMEOUT = 10.0
#: how long a process gets to exit after SIGTERM before it is sent SIGKILL
TERM_TIMEOUT = 5.0
#: how many characters of a log a timeout or start failure shows
LOG_TAIL = 3000


# --- waiting -------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.1,
    *,
    ignore: tuple[type[BaseException], ...] = (),
    context: Callable[[], str] | None = None,
) -> float:
    """Call ``predicate`` every ``interval`` seconds until it returns true; return the
    seconds that took.

    The predicate is always called at least once, and once more at the deadline. An
    exception of a type in ``ignore`` counts as false (the last one is shown on timeout);
    any other exception propagates at once. On timeout raises ``AssertionError`` starting
    ``timed out after {timeout}s waiting for {what}``, followed by the last ignored
    exception and ``context()`` if given.
    """
    start = time.monotonic()
    deadline = start + timeout
    last_error: BaseException | None = None
    while True:
        try:
            if predicate():
                return time.monotonic() - start
        except ignore as exc:
            last_error = exc
        now = time.monotonic()
        if now >= deadline:
            break
        time.sleep(min(interval, deadline - now))
    lines = [f"timed out after {timeout}s waiting for {what}"]
    if last_error is not None:
        lines.append(f"last error: {type(last_error).__name__}: {last_error}")
    if context is not None:
        try:
            lines.append(context())
        except Exception as exc:  # the context is a courtesy; never hide the timeout
            lines.append(f"(context unavailable: {type(exc).__name__}: {exc})")
    raise AssertionError("\n".join(lines))


# --- ports ---------------------------------------------------------------------------------


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bind_pair(host: str) -> tuple[socket.socket, socket.socket]:
    """A TCP and a UDP socket bound to one OS-chosen port on ``host`` (kept open)."""
    family = _family(host)
    for _ in range(50):
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                udp.bind((host, port))
            except OSError:
                udp.close()
                raise
        except OSError:
            tcp.close()
            continue
        return tcp, udp
    raise OSError(f"no port free for both TCP and UDP on {host} after 50 attempts")


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that was free for both TCP and UDP a moment ago (both bound, then
    closed). Another process may still take it before it is used."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports, each free for both TCP and UDP on ``host`` (all held open
    together while choosing, so none repeats)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(n):
            tcp, udp = _bind_pair(host)
            held += [tcp, udp]
            ports.append(tcp.getsockname()[1])
    finally:
        for s in held:
            s.close()
    return ports


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- processes -----------------------------------------------------------------------------


class Stoppable(Protocol):
    """Anything the registry can stop: it must stop its process(es) by PID, idempotently."""

    def stop(self) -> None: ...


def stop_process(proc: subprocess.Popen[Any], term_timeout: float = TERM_TIMEOUT) -> int:
    """SIGTERM ``proc`` by its PID, SIGKILL it if it has not exited after ``term_timeout``
    seconds, wait for it and return its exit status. Idempotent; closes its pipes."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # Popen.send_signal: os.kill(pid) unless reaped
        try:
            proc.wait(timeout=term_timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return proc.returncode


class SerfCommandError(RuntimeError):
    """A ``serf`` CLI command failed (non-zero exit or timeout); carries its output."""

    def __init__(self, args: Sequence[str], returncode: int | None, output: str) -> None:
        self.cmd = list(args)
        self.returncode = returncode
        self.output = output
        status = "timed out" if returncode is None else f"exited with {returncode}"
        super().__init__(f"{' '.join(self.cmd)} {status}: {output.strip()}")


class SerfAgentExited(RuntimeError):
    """The agent process exited while it was expected to run."""


def _run_serf(args: Sequence[str], timeout: float = CLI_TIMEOUT) -> str:
    try:
        done = subprocess.run(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:  # run() has killed and reaped the child
        out = exc.output
        text = out.decode(errors="replace") if isinstance(out, bytes) else (out or "")
        raise SerfCommandError(args, None, text) from exc
    if done.returncode != 0:
        raise SerfCommandError(args, done.returncode, done.stdout)
    return done.stdout


def serf_keygen(serf_bin: str = "serf") -> str:
    """A new base64 encryption key from ``serf keygen`` (32 bytes, AES-256)."""
    return _run_serf([serf_bin, "keygen"]).strip()


class SerfMember(TypedDict):
    """One row of ``serf members -format=json``."""

    name: str
    addr: str  # the IP alone, e.g. "127.0.0.1" (serf's JSON has "127.0.0.1:7946")
    port: int
    status: str  # alive | leaving | left | failed
    tags: dict[str, str]


def _parse_members(text: str) -> list[SerfMember]:
    # {"members": [{"name", "addr": "127.0.0.1:7946", "port": 7946, "tags": {...},
    #               "status": "alive", "protocol": {"max", "min", "version"}}]}
    rows = json.loads(text)["members"]
    out: list[SerfMember] = []
    for row in rows:
        host = str(row["addr"]).rpartition(":")[0].strip("[]")
        out.append(
            SerfMember(
                name=str(row["name"]),
                addr=host,
                port=int(row["port"]),
                status=str(row["status"]),
                tags={str(k): str(v) for k, v in (row.get("tags") or {}).items()},
            )
        )
    return out


class SerfAgent:
    """One ``serf agent`` process on loopback, with its ports, log file and PID.

    Ports not given are chosen with :func:`free_ports` when the object is made, so
    :attr:`address` is known before :meth:`start`, and :meth:`restart` reuses them.
    """

    def __init__(
        self,
        name: str,
        log_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        rpc_port: int | None = None,
        tags: Mapping[str, str] | None = None,
        encrypt: str | None = None,
        extra_args: Sequence[str] = (),
        serf_bin: str = "serf",
        term_timeout: float = TERM_TIMEOUT,
    ) -> None:
        self.name = name
        self.host = host
        if port is None or rpc_port is None:
            p, r = free_ports(2, host)
            port = p if port is None else port
            rpc_port = r if rpc_port is None else rpc_port
        self.port = port
        self.rpc_port = rpc_port
        self.tags = dict(tags or {})
        self.encrypt = encrypt
        self.extra_args = list(extra_args)
        self.serf_bin = serf_bin
        self.term_timeout = term_timeout
        self.log_path = Path(log_dir) / f"serf-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        state = "never started" if self.proc is None else (
            f"pid {self.proc.pid}, " + ("running" if self.running else f"exit {self.proc.returncode}")
        )
        return f"<SerfAgent {self.name} {self.address} rpc {self.rpc_address} {state}>"

    # addresses and state

    @property
    def address(self) -> str:
        """The gossip address to join, ``"127.0.0.1:PORT"``."""
        return _hostport(self.host, self.port)

    @property
    def rpc_address(self) -> str:
        return _hostport(self.host, self.rpc_port)

    @property
    def pid(self) -> int:
        """The PID of the current (or last) agent process."""
        if self.proc is None:
            raise RuntimeError(f"serf agent {self.name} was never started")
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def command(self) -> list[str]:
        cmd = [
            self.serf_bin,
            "agent",
            f"-node={self.name}",
            f"-bind={self.address}",
            f"-rpc-addr={self.rpc_address}",
            "-log-level=debug",
        ]
        for key, value in self.tags.items():
            cmd.append(f"-tag={key}={value}")
        if self.encrypt is not None:
            cmd.append(f"-encrypt={self.encrypt}")
        return cmd + self.extra_args

    # lifecycle

    def start(self) -> SerfAgent:
        """Start the agent (does not wait for it: see :meth:`wait_ready`). Its output is
        appended to :attr:`log_path`, after a line marking each start."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self._close_log()
        cmd = self.command()
        self.starts += 1
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed when the agent exits
        self._log.write(f"=== serfharness start #{self.starts}: {' '.join(cmd)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def wait_ready(self, timeout: float = 10.0) -> float:
        """Wait until ``serf members`` answers on the RPC address; returns the seconds it
        took. Raises :class:`SerfAgentExited` (with the log) at once if the agent exits."""

        def ready() -> bool:
            self._check_running("before its RPC answered")
            self.members()
            return True

        return wait_until(
            ready, timeout, f"serf agent {self.name} RPC on {self.rpc_address}",
            ignore=(SerfCommandError,), context=self.log_tail,
        )

    def kill(self) -> None:
        """SIGKILL the agent by PID (a crash: no leave, no goodbye) and wait for it."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._close_log()

    def stop(self) -> None:
        """SIGTERM by PID (serf then shuts down without a graceful leave), SIGKILL after
        ``term_timeout``; waits. Idempotent, and a no-op if never started."""
        if self.proc is not None:
            stop_process(self.proc, self.term_timeout)
        self._close_log()

    def restart(self) -> SerfAgent:
        """SIGKILL the agent if it is running, then start it again with the same name,
        ports, tags and key. Does not wait: call :meth:`wait_ready`."""
        if self.running:
            self.kill()
        return self.start()

    def leave(self, timeout: float = 10.0) -> None:
        """``serf leave`` (graceful leave) and wait for the agent process to exit."""
        self._cli("leave", timeout=timeout)
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"serf agent {self.name} (pid {self.proc.pid}) still running {timeout}s "
                f"after a graceful leave\n{self.log_tail()}"
            ) from None
        self._close_log()

    # CLI

    def _cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> str:
        return _run_serf(
            [self.serf_bin, args[0], f"-rpc-addr={self.rpc_address}", *args[1:]], timeout
        )

    def members(self) -> list[SerfMember]:
        """This agent's member list (``serf members -format=json``), including left and
        failed members."""
        return _parse_members(self._cli("members", "-format=json"))

    def statuses(self) -> dict[str, str]:
        """``{name: status}`` as this agent sees the cluster."""
        return {m["name"]: m["status"] for m in self.members()}

    def member(self, name: str) -> SerfMember | None:
        return next((m for m in self.members() if m["name"] == name), None)

    def join(self, *addrs: str) -> int:
        """``serf join`` the given ``host:port`` addresses; returns how many nodes serf
        contacted. Raises :class:`SerfCommandError` with serf's output if it fails."""
        if not addrs:
            raise ValueError("join needs at least one address")
        out = self._cli("join", *addrs)
        found = re.search(r"contacting (\d+) nodes?", out)
        if found is None:
            raise SerfCommandError(["serf", "join", *addrs], 0, out)
        return int(found.group(1))

    # logs

    def log_text(self) -> str:
        """Everything the agent wrote to its log file so far (all starts)."""
        try:
            return self.log_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = LOG_TAIL) -> str:
        text = self.log_text()
        cut = "...\n" if len(text) > chars else ""
        return f"--- {self.log_path} (tail) ---\n{cut}{text[-chars:]}"

    def _check_running(self, when: str) -> None:
        if self.proc is None:
            raise RuntimeError(f"serf agent {self.name} was never started")
        rc = self.proc.poll()
        if rc is not None:
            self._close_log()
            raise SerfAgentExited(
                f"serf agent {self.name} (pid {self.proc.pid}) exited with {rc} {when}\n"
                f"{self.log_tail()}"
            )

    def _close_log(self) -> None:
        if self._log is not None and not self.running:
            self._log.close()
            self._log = None


def wait_for_status(
    observers: Iterable[SerfAgent],
    members: str | Iterable[str],
    status: str,
    timeout: float,
    interval: float = 0.1,
) -> float:
    """Wait until every observer lists every named member with ``status``; returns the
    seconds it took. The timeout message shows each observer's view."""
    obs = list(observers)
    names = [members] if isinstance(members, str) else list(members)

    def done() -> bool:
        for agent in obs:
            view = agent.statuses()
            if any(view.get(n) != status for n in names):
                return False
        return True

    def views() -> str:
        lines = []
        for agent in obs:
            try:
                lines.append(f"{agent.name} sees {agent.statuses()}")
            except (SerfCommandError, OSError) as exc:
                lines.append(f"{agent.name}: {exc}")
        return "\n".join(lines)

    what = f"{', '.join(a.name for a in obs)} to see {', '.join(names)} {status}"
    return wait_until(
        done, timeout, what, interval, ignore=(SerfCommandError,), context=views
    )


# --- the registry --------------------------------------------------------------------------

_P = TypeVar("_P", bound="Stoppable | subprocess.Popen[Any]")


class ProcessRegistry:
    """Every process a test starts, stopped by PID in :meth:`close` (newest first).

    Used as the ``procs`` fixture; also a context manager.
    """

    def __init__(
        self, log_dir: Path, *, serf_bin: str = "serf", term_timeout: float = TERM_TIMEOUT
    ) -> None:
        self.log_dir = Path(log_dir)
        self.serf_bin = serf_bin
        self.term_timeout = term_timeout
        self._items: list[Stoppable | subprocess.Popen[Any]] = []
        self._logs: list[IO[bytes]] = []

    def __enter__(self) -> ProcessRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: _P) -> _P:
        """Track a :class:`SerfAgent`, anything :class:`Stoppable`, or a ``Popen``."""
        self._items.append(item)
        return item

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def popen(
        self,
        args: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start any command with stdout+stderr to ``log_dir/{name}.log`` and track it."""
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
        return self.add(proc)

    def serf_agent(
        self,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        encrypt: str | None = None,
        port: int | None = None,
        rpc_port: int | None = None,
        extra_args: Sequence[str] = (),
        start: bool = True,
        ready_timeout: float = 10.0,
    ) -> SerfAgent:
        """Make and track a :class:`SerfAgent`; with ``start`` (the default) start it and
        wait until its RPC answers. If the agent dies because a port it was given by
        :func:`free_ports` was taken in the meantime, it is retried on new ports."""
        attempts = 3 if port is None and rpc_port is None else 1
        for attempt in range(1, attempts + 1):
            agent = self.add(
                SerfAgent(
                    name, self.log_dir, port=port, rpc_port=rpc_port, tags=tags,
                    encrypt=encrypt, extra_args=extra_args, serf_bin=self.serf_bin,
                    term_timeout=self.term_timeout,
                )
            )
            if not start:
                return agent
            agent.start()
            try:
                agent.wait_ready(ready_timeout)
            except SerfAgentExited as exc:
                if attempt < attempts and "address already in use" in str(exc):
                    continue
                raise
            return agent
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Stop everything, newest first, each by its PID (SIGTERM, then SIGKILL after
        ``term_timeout``). Tries all; raises the first error afterwards. Idempotent."""
        errors: list[BaseException] = []
        while self._items:
            item = self._items.pop()
            try:
                if isinstance(item, subprocess.Popen):
                    stop_process(item, self.term_timeout)
                else:
                    item.stop()
            except Exception as exc:
                errors.append(exc)
        while self._logs:
            self._logs.pop().close()
        if errors:
            raise errors[0]

    def serf_agents(self) -> list[SerfAgent]:
        return [i for i in self._items if isinstance(i, SerfAgent)]
