"""``swimpy demo``: a small cluster on loopback, one crash, its detection and a rejoin.

Every member is its own :func:`swimpy.open_node` on 127.0.0.1 (real UDP and TCP sockets,
ports the OS picks), all in one trio run. The demo

1. starts the members and joins them through the first one, and times how long until
   every member sees every other alive;
2. kills the last member abruptly (leaves its ``open_node`` block without ``leave()``,
   so its sockets close as in a crash) and records, from each other member's events,
   when it first suspected it and when it declared it dead;
3. restarts it under the same name and port, joins it through the first member again,
   and times how long until everyone sees it alive (it refutes its old death with a
   higher incarnation);
4. prints a summary, or with ``--json`` one JSON object with every time.

Every wait has a limit: a limit that runs out ends the demo with a one-line error and
exit status 1. This module imports only ``click`` at import time, so the command line
stays quick to load; trio and the runtime are imported when the demo runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    import trio

    from swimpy.profiles import Config
    from swimpy.runtime.events import Subscription
    from swimpy.runtime.node import Node

__all__ = ["DemoError", "command"]

_E = TypeVar("_E", bound=BaseException)

MIN_MEMBERS = 2
MAX_MEMBERS = 50
BIND_ADDR = "127.0.0.1"


class DemoError(Exception):
    """Why the demo stopped (a limit ran out, a member could not start or join): one line
    for the user."""


@dataclass(frozen=True, slots=True)
class Seen:
    """One member event, as a subscriber received it."""

    #: seconds since the demo began
    at: float
    #: the member whose view changed
    observer: str
    #: the event kind's value ("suspect", "dead", "joined", ...)
    kind: str
    #: the member the event is about
    subject: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class Limits:
    """How long each wait may take, in seconds."""

    join: float
    converge: float
    stop: float
    detect: float
    rejoin: float

    @classmethod
    def for_config(cls, config: Config, members: int, override: float | None) -> Limits:
        if override is not None:
            return cls(override, override, override, override, override)
        from swimpy.core.lifeguard import suspicion_timeout

        probe = config.probe_interval
        most_suspicion = config.suspicion_max_timeout_mult * suspicion_timeout(
            config.suspicion_mult, members, probe)
        # joins and gossip take well under a second on loopback; the limits only catch a
        # cluster that is stuck. Detection: a full round of probes by every survivor (the
        # last one to reach the dead member), the longest suspicion, and slack for
        # Lifeguard's slowed-down probes.
        # Gossip is transmit-limited (the local profile sends each broadcast only twice
        # at this size), so a member can miss one; anti-entropy repairs that at its next
        # push/pull with a random peer, which may take a couple of intervals.
        repair = 2 * config.push_pull_interval
        return cls(
            join=5.0 + 2 * config.tcp_timeout,
            converge=15.0 + 0.5 * members + repair,
            stop=10.0,
            detect=2 * members * probe + most_suspicion + 10.0,
            rejoin=15.0 + 0.5 * members + repair,
        )


@dataclass(slots=True)
class _Running:
    """A started member: its node and the event that stops it."""

    node: Node
    stop: trio.Event
    stopped: trio.Event


def _find(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first ``kind`` exception in ``exc`` (trio wraps a task's exception in
    exception groups)."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


class Demo:
    """The demo's trio program: :meth:`run` returns the result (what ``--json`` prints).

    ``out`` receives the human lines as they happen (None: quiet)."""

    def __init__(self, members: int, profile: str, *, limit: float | None = None,
                 out: Callable[[str], None] | None = None) -> None:
        if not MIN_MEMBERS <= members <= MAX_MEMBERS:
            raise ValueError(f"members must be {MIN_MEMBERS}..{MAX_MEMBERS}, not {members}")
        self.profile = profile
        self.names = [f"demo-{i}" for i in range(1, members + 1)]
        self.victim = self.names[-1]
        self.seed_name = self.names[0]
        self.limits = Limits.for_config(self._config(self.seed_name, 0), members, limit)
        self._out = out
        self.running: dict[str, _Running] = {}
        self.ports: dict[str, int] = {}
        self.log: list[Seen] = []
        self._cursor = 0
        #: members killed and not back yet: suspicions of them are expected
        self.down: set[str] = set()
        self.false_suspicions: list[Seen] = []
        self._t0 = 0.0
        self._changed: trio.Event  # set in run(), in the trio run

    # ------------------------------------------------------------------ helpers

    def _config(self, name: str, port: int) -> Config:
        from swimpy import profiles

        return profiles.PROFILES[self.profile](name=name, bind_addr=BIND_ADDR, bind_port=port)

    def now(self) -> float:
        import trio

        return trio.current_time() - self._t0

    def say(self, text: str, at: float | None = None) -> None:
        if self._out is not None:
            self._out(f"[{self.now() if at is None else at:7.3f}s] {text}")

    def _address(self, name: str) -> str:
        return f"{BIND_ADDR}:{self.ports[name]}"

    async def _serve(self, name: str, port: int, *,
                     task_status: trio.TaskStatus[_Running]) -> None:
        """Run member ``name`` until its ``stop`` event, then stop it without leaving."""
        import contextlib

        import trio

        import swimpy

        stop, stopped = trio.Event(), trio.Event()
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    node = await stack.enter_async_context(
                        swimpy.open_node(self._config(name, port)))
                except OSError as exc:
                    raise DemoError(f"could not start {name}: {exc}") from None
                events = node.events()  # before anything happens
                async with trio.open_nursery() as inner:
                    inner.start_soon(self._consume, name, events)
                    task_status.started(_Running(node, stop, stopped))
                    await stop.wait()
                    inner.cancel_scope.cancel()
        finally:
            stopped.set()

    async def _consume(self, observer: str, events: Subscription) -> None:
        import trio

        import swimpy

        async for event in events:
            if isinstance(event, swimpy.MemberEvent):
                self.log.append(Seen(self.now(), observer, event.kind.value,
                                     event.member.name, event.member.incarnation))
                self._changed.set()
                self._changed = trio.Event()

    async def _start(self, nursery: trio.Nursery, name: str, port: int) -> _Running:
        running: _Running = await nursery.start(self._serve, name, port)
        self.running[name] = running
        self.ports[name] = running.node.address[1]
        return running

    async def _join(self, name: str) -> None:
        import swimpy

        try:
            await self.running[name].node.join([self._address(self.seed_name)])
        except swimpy.JoinError as exc:
            raise DemoError(f"{name} could not join through {self.seed_name}: {exc}") from None

    async def _join_all(self, names: list[str]) -> None:
        import trio

        with trio.move_on_after(self.limits.join) as scope:
            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(self._join, name)
        if scope.cancelled_caught:
            raise DemoError(f"timed out after {self.limits.join:g} s waiting for "
                            f"{', '.join(names)} to join through {self.seed_name}")

    def _sees_all_alive(self, name: str) -> bool:
        import swimpy

        alive = {m.name for m in self.running[name].node.members()
                 if m.state == swimpy.State.ALIVE}
        return alive.issuperset(self.names)

    def _unexpected(self, e: Seen) -> None:
        """Report suspicions and deaths of members that are running (false positives)."""
        if e.subject in self.down or e.kind not in ("suspect", "dead"):
            return
        self.false_suspicions.append(e)
        what = "suspects" if e.kind == "suspect" else "declares dead"
        self.say(f"  ! {e.observer} {what} {e.subject}, which is running "
                 "(a false positive)", e.at)

    async def _watch(self, until: Callable[[], bool], on_event: Callable[[Seen], None],
                     timeout: float, what: Callable[[], str] | None) -> float:
        """Hand every new event to ``on_event`` until ``until()`` holds, and return the
        time it did. After ``timeout`` seconds: a :class:`DemoError` saying ``what()`` we
        waited for, or (``what`` None) return quietly."""
        import trio

        with trio.move_on_after(timeout):
            while True:
                while self._cursor < len(self.log):
                    on_event(self.log[self._cursor])
                    self._cursor += 1
                if until():
                    return self.now()
                # wait for the next event (and look again now and then all the same)
                with trio.move_on_after(0.1):
                    await self._changed.wait()
        if what is not None:
            raise DemoError(f"timed out after {timeout:g} s waiting for {what()}")
        return self.now()

    # ------------------------------------------------------------------ the program

    async def run(self) -> dict[str, Any]:
        import trio

        self._t0 = trio.current_time()
        self._changed = trio.Event()
        async with trio.open_nursery() as nursery:
            result = await self._program(nursery)
            nursery.cancel_scope.cancel()  # the other members stop too, abruptly
        return result

    async def _program(self, nursery: trio.Nursery) -> dict[str, Any]:
        import trio

        from swimpy.core.lifeguard import suspicion_timeout

        n = len(self.names)
        cfg = self._config(self.seed_name, 0)
        low = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
        self.say(f"{self.profile} profile: probe every {cfg.probe_interval:g} s, suspicion "
                 f"timeout {low:g}-{low * cfg.suspicion_max_timeout_mult:g} s")

        # 1. start and converge ------------------------------------------------------
        for name in self.names:
            await self._start(nursery, name, 0)
        self.say(f"started {n} members on {BIND_ADDR}: " + ", ".join(
            f"{name} :{self.ports[name]}" for name in self.names))
        t_join = self.now()
        self.say(f"{', '.join(self.names[1:])} join through {self.seed_name} "
                 f"({self._address(self.seed_name)})")
        await self._join_all(self.names[1:])

        converged: dict[str, float] = {}

        def all_converged() -> bool:
            for name in self.names:
                if name not in converged and self._sees_all_alive(name):
                    converged[name] = self.now() - t_join
                    self.say(f"  {name} sees all {n} members alive "
                             f"(+{converged[name]:.3f} s)")
            return len(converged) == n

        t = await self._watch(all_converged, self._unexpected, self.limits.converge,
                              lambda: "every member to see every other alive (not yet: "
                              + ", ".join(x for x in self.names if x not in converged) + ")")
        convergence = t - t_join
        self.say(f"converged: every member sees every other alive, {convergence:.3f} s "
                 "after the joins began")
        # a moment of normal operation before the crash
        await self._watch(lambda: False, self._unexpected, cfg.probe_interval, None)

        # 2. crash and detection -----------------------------------------------------
        victim = self.victim
        observers = [x for x in self.names if x != victim]
        doomed = self.running.pop(victim)
        self.down.add(victim)
        doomed.stop.set()
        with trio.move_on_after(self.limits.stop):
            await doomed.stopped.wait()
        if not doomed.stopped.is_set():
            raise DemoError(f"timed out after {self.limits.stop:g} s waiting for {victim} "
                            "to stop")
        t_kill = self.now()
        self.say(f"killed {victim}: its node stopped without leaving, as in a crash")
        suspected: dict[str, float] = {}
        dead: dict[str, float] = {}

        def on_crash_event(e: Seen) -> None:
            if e.observer == victim or e.subject != victim:
                self._unexpected(e)
                return
            if e.kind == "suspect" and e.observer not in suspected and e.observer not in dead:
                suspected[e.observer] = e.at - t_kill
                self.say(f"  {e.observer} suspects {victim} (+{suspected[e.observer]:.3f} s)",
                         e.at)
            elif e.kind == "dead" and e.observer not in dead:
                dead[e.observer] = e.at - t_kill
                self.say(f"  {e.observer} declares {victim} dead "
                         f"(+{dead[e.observer]:.3f} s)", e.at)

        await self._watch(lambda: len(dead) == len(observers), on_crash_event,
                          self.limits.detect,
                          lambda: f"every member to declare {victim} dead (not yet: "
                          + ", ".join(x for x in observers if x not in dead) + ")")
        all_dead = max(dead.values())
        self.say(f"every other member declared {victim} dead, {all_dead:.3f} s after the "
                 "crash")

        # 3. restart under the same name and port --------------------------------------
        port = self.ports[victim]
        await self._start(nursery, victim, port)
        t_restart = self.now()
        self.down.discard(victim)
        self.say(f"restarted {victim} on {self._address(victim)}, joining through "
                 f"{self.seed_name}")
        await self._join_all([victim])
        back: dict[str, float] = {}
        view: list[float] = []

        def on_rejoin_event(e: Seen) -> None:
            if e.subject == victim and e.at < t_restart:
                return  # news of the crash, late
            if (e.observer != victim and e.subject == victim and e.at >= t_restart
                    and e.kind in ("joined", "refuted") and e.observer not in back):
                back[e.observer] = e.at - t_restart
                self.say(f"  {e.observer} sees {victim} alive again "
                         f"(+{back[e.observer]:.3f} s, incarnation {e.incarnation})", e.at)
            else:
                self._unexpected(e)

        def everyone_back() -> bool:
            import swimpy

            if not view and self._sees_all_alive(victim):
                view.append(self.now() - t_restart)
                self.say(f"  {victim} sees all {n} members alive (+{view[0]:.3f} s)")
            if not view or len(back) < len(observers):
                return False
            return all(
                (m := self.running[x].node.member(victim)) is not None
                and m.state == swimpy.State.ALIVE for x in observers)

        t = await self._watch(everyone_back, on_rejoin_event, self.limits.rejoin,
                              lambda: f"every member to see {victim} alive again (not yet: "
                              + ", ".join(x for x in observers if x not in back) + ")")
        rejoined = t - t_restart
        me = self.running[victim].node.member(victim)
        incarnation = me.incarnation if me is not None else 0
        self.say(f"every member sees {victim} alive again, {rejoined:.3f} s after the restart "
                 f"(it refuted its death: incarnation {incarnation})")

        return {
            "members": n,
            "profile": self.profile,
            "bind_addr": BIND_ADDR,
            "names": list(self.names),
            "ports": dict(self.ports),
            "convergence": {
                "all_s": _ms(convergence),
                "by_member": {x: _ms(converged[x]) for x in self.names},
            },
            "crash": {
                "member": victim,
                "first_suspect_s": _ms(min(suspected.values(), default=None)),
                "first_dead_s": _ms(min(dead.values())),
                "all_dead_s": _ms(all_dead),
                "by_member": {x: {"suspect_s": _ms(suspected.get(x)), "dead_s": _ms(dead[x])}
                              for x in observers},
            },
            "rejoin": {
                "member": victim,
                "port": port,
                "incarnation": incarnation,
                "first_alive_s": _ms(min(back.values())),
                "all_alive_s": _ms(max(back.values())),
                "member_sees_all_s": _ms(view[0]),
                "converged_s": _ms(rejoined),
                "by_member": {x: _ms(back[x]) for x in observers},
            },
            "false_suspicions": len(self.false_suspicions),
            "limits_s": {"join": self.limits.join, "converge": self.limits.converge,
                         "detect": self.limits.detect, "rejoin": self.limits.rejoin},
            "total_s": _ms(self.now()),
        }


def summary(result: dict[str, Any]) -> str:
    """The human summary of a result."""
    crash, rejoin = result["crash"], result["rejoin"]
    victim = crash["member"]
    by_member: dict[str, dict[str, float | None]] = crash["by_member"]
    last_suspect = max((t["suspect_s"] for t in by_member.values()
                        if t["suspect_s"] is not None), default=None)

    def row(label: str, value: float | None, note: str = "") -> str:
        return f"  {label:<40s} {_fmt(value):>7s}{note}"

    lines = [
        "",
        f"summary: {result['members']} members, {result['profile']} profile, "
        f"{result['bind_addr']} (times in seconds)",
        row("convergence, after the joins began", result["convergence"]["all_s"]),
        f"  crash of {victim}, after the crash:",
        f"    {'member':<10s} {'suspected':>10s} {'dead':>10s}",
    ]
    for name, times in by_member.items():
        lines.append(f"    {name:<10s} {_fmt(times['suspect_s']):>10s} "
                     f"{_fmt(times['dead_s']):>10s}")
    lines += [
        f"    {'first':<10s} {_fmt(crash['first_suspect_s']):>10s} "
        f"{_fmt(crash['first_dead_s']):>10s}",
        f"    {'last':<10s} {_fmt(last_suspect):>10s} {_fmt(crash['all_dead_s']):>10s}",
        f"  rejoin of {victim} on the same port ({rejoin['port']}), after the restart:",
        row("  it saw every member alive", rejoin["member_sees_all_s"]),
        row("  the first member saw it alive", rejoin["first_alive_s"]),
        row("  every member saw it alive", rejoin["all_alive_s"],
            f"  (incarnation {rejoin['incarnation']}: it refuted its death)"),
        f"  false suspicions of running members: {result['false_suspicions']}",
        f"  total: {result['total_s']:.1f} s",
    ]
    return "\n".join(lines)


@click.command("demo")
@click.option("--members", "-n", type=click.IntRange(MIN_MEMBERS, MAX_MEMBERS), default=5,
              show_default=True, help="cluster size")
@click.option("--profile", type=click.Choice(["lan", "local"]), default="lan",
              show_default=True,
              help="lan: memberlist's LAN timing (a crash is detected in about 5-15 s); "
                   "local: faster timing for one host")
@click.option("--json", "as_json", is_flag=True,
              help="print the times as one JSON object instead of the running commentary")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS",
              help="limit for each wait (default: from the profile and the cluster size)")
def command(members: int, profile: str, as_json: bool, timeout: float | None) -> None:
    """Start a cluster on loopback, crash a member, watch it detected, bring it back.

    Each member is its own node with real UDP and TCP sockets on 127.0.0.1, all in this
    process. Times are measured from the members' own events."""
    import trio

    demo = Demo(members, profile, limit=timeout, out=None if as_json else click.echo)
    try:
        result = trio.run(demo.run)
    except BaseException as exc:
        if _find(exc, KeyboardInterrupt) is not None:
            raise click.Abort() from None
        found = _find(exc, DemoError)
        if found is None:
            raise
        raise click.ClickException(str(found)) from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(summary(result))
