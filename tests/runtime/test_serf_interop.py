"""swimpy nodes and real Go ``serf agent`` processes (memberlist 0.2.2) in one cluster on
127.0.0.1. The swimpy side runs in child processes so that SIGKILL is a real crash. Every
wait has a deadline; every process is stopped by its PID (the ``procs`` fixture), also
when a test fails. Skipped only when serf is not installed (CI installs it)."""

from __future__ import annotations

import base64
import math
import re
import time
from collections.abc import Iterable
from pathlib import Path

from tests.runtime.serfharness import (
    ProcessRegistry,
    SerfAgent,
    free_ports,
    requires_serf,
    serf_keygen,
    wait_for_status,
    wait_until,
)
from tests.runtime.swimpyproc import SwimpyProcess

pytestmark = requires_serf

#: memberlist's LAN profile, which both serf agent and swimpy's lan profile use
PROBE_INTERVAL = 1.0
SUSPICION_MULT = 4
SUSPICION_MAX_TIMEOUT_MULT = 6


def detection_bound(n: int) -> float:
    """(n-1) x probe_interval + probe_interval + the maximum suspicion timeout + 5 s."""
    min_timeout = SUSPICION_MULT * max(1.0, math.log10(n)) * PROBE_INTERVAL
    return (n - 1) * PROBE_INTERVAL + PROBE_INTERVAL + SUSPICION_MAX_TIMEOUT_MULT * min_timeout + 5


class Cluster:
    def __init__(self, procs: ProcessRegistry, tmp: Path, *, key: str | None = None,
                 serfs: int = 3, swimpys: int = 2) -> None:
        self.procs = procs
        self.tmp = tmp
        self.key = key
        self.serf: list[SerfAgent] = []
        self.py: list[SwimpyProcess] = []
        for i in range(serfs):
            agent = procs.serf_agent(f"s{i + 1}", tags={"role": f"serf{i + 1}"}, encrypt=key)
            self.serf.append(agent)
        for agent in self.serf[1:]:
            agent.join(self.serf[0].address)
        ports = free_ports(swimpys)
        for i, port in enumerate(ports):
            self.py.append(self.add_swimpy(f"p{i + 1}", port,
                                           join=[self.serf[i % serfs].address]))

    def add_swimpy(self, name: str, port: int, *, join: list[str],
                   key: str | None = None, tags: dict[str, str] | None = None) -> SwimpyProcess:
        node = SwimpyProcess(name, self.tmp, port=port, join=join,
                             tags=tags if tags is not None else {"role": "py", "lang": "python"},
                             key=key if key is not None else self.key)
        self.procs.add(node.start())
        node.wait_ready()
        return node

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.serf] + [p.name for p in self.py]

    def views(self) -> str:
        lines = [f"{a.name} (serf) sees {a.statuses()}" for a in self.serf if a.running]
        lines += [f"{p.name} (swimpy) sees {p.statuses()}" for p in self.py]
        return "\n".join(lines)

    def wait_all(self, names: Iterable[str], status: str, timeout: float,
                 serf: list[SerfAgent] | None = None,
                 py: list[SwimpyProcess] | None = None,
                 py_status: str | None = None) -> float:
        """Until the given serf agents and swimpy nodes list every name with ``status``
        (swimpy's word for it may differ: ``py_status``)."""
        names = list(names)
        serf = self.serf if serf is None else serf
        py = self.py if py is None else py
        want_py = py_status or status

        def done() -> bool:
            for a in serf:
                view = a.statuses()
                if any(view.get(n) != status for n in names):
                    return False
            for p in py:
                view = p.statuses()
                if any(view.get(n) != want_py for n in names):
                    return False
            return True

        return wait_until(done, timeout, f"everyone to see {names} {status}",
                          context=self.views)


def test_mixed_cluster_detection_restart_and_leave(procs: ProcessRegistry,
                                                    tmp_path: Path) -> None:
    c = Cluster(procs, tmp_path)
    s1, s2, s3 = c.serf
    p1, p2 = c.py
    c.wait_all(c.names, "alive", 20)
    # swimpy's tags show in serf members, serf's in swimpy's view
    m = s1.member("p1")
    assert m is not None and m["tags"] == {"role": "py", "lang": "python"}
    assert m["port"] == p1.port
    data = p1.status()
    assert data is not None
    assert {x["name"]: x["tags"] for x in data["members"]}["s2"] == {"role": "serf2"}

    bound = detection_bound(5)
    # SIGKILL a swimpy node: every serf agent reports it failed, the other swimpy dead
    t0 = time.monotonic()
    p2.kill()
    wait_for_status(c.serf, "p2", "failed", bound)
    c.wait_all(["p2"], "failed", bound - (time.monotonic() - t0), serf=[], py=[p1],
               py_status="dead")
    took_swimpy_killed = time.monotonic() - t0

    # restarted under the same name and port: alive again everywhere
    p2.start()
    p2.wait_ready()
    c.wait_all(c.names, "alive", 20)

    # SIGKILL a serf agent: the swimpy nodes report it dead
    t0 = time.monotonic()
    s3.kill()
    c.wait_all(["s3"], "failed", bound, serf=[s1, s2], py=[p1, p2], py_status="dead")
    took_serf_killed = time.monotonic() - t0

    # a graceful swimpy leave: left on swimpy nodes, not alive in serf (serf shows
    # "left" only after Serf's own leave intent, which the Serf layer adds)
    p1.command_line("leave")
    wait_until(lambda: p2.statuses().get("p1") == "left", 10, "p2 to see p1 left",
               context=c.views)
    wait_until(lambda: all(a.statuses().get("p1") not in (None, "alive") for a in (s1, s2)),
               10, "serf to see p1 not alive", context=c.views)
    print(f"detection: swimpy killed {took_swimpy_killed:.1f}s, serf killed "
          f"{took_serf_killed:.1f}s (bound {bound:.0f}s)")


def test_encrypted_clusters_and_a_wrong_key(procs: ProcessRegistry, tmp_path: Path) -> None:
    key32 = serf_keygen()
    assert len(base64.b64decode(key32)) == 32
    key16 = base64.b64encode(bytes(range(16))).decode()
    for key, tag in ((key32, "k32"), (key16, "k16")):
        sub = tmp_path / tag
        sub.mkdir()
        c = Cluster(procs, sub, key=key, serfs=2, swimpys=1)
        c.wait_all(c.names, "alive", 20)
        wrong = base64.b64encode(bytes(reversed(range(len(base64.b64decode(key)))))).decode()
        (port,) = free_ports(1)
        out = SwimpyProcess(f"wrong-{tag}", sub, port=port, join=[c.serf[0].address],
                            key=wrong, settings={"tcp_timeout": "2s"})
        procs.add(out.start())
        out.wait_ready()
        wait_until(lambda out=out: "could not join" in out.log_text(), 30,  # type: ignore[misc]
                   "the wrong-key node to give up joining", context=out.log_tail)
        log = out.log_text()
        assert re.search(r"decrypt|No installed keys|encrypt", log), log[-2000:]
        assert c.serf[0].member(out.name) is None
        assert set(out.statuses()) == {out.name}
        for agent in c.serf:
            agent.stop()
        for p in c.py:
            p.stop()
        out.stop()


def test_steady_state_two_minutes(procs: ProcessRegistry, tmp_path: Path) -> None:
    c = Cluster(procs, tmp_path)
    c.wait_all(c.names, "alive", 20)
    start_stats = {p.name: p.statistics() for p in c.py}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # watch, do not just sleep: fail at the first sign
        for a in c.serf:
            view = a.statuses()
            assert all(view.get(n) == "alive" for n in c.names), c.views()
        for p in c.py:
            assert all(p.statuses().get(n) == "alive" for n in c.names), c.views()
        time.sleep(1)
    for a in c.serf:
        log = a.log_text()
        for bad in ("Suspect", "EventMemberFailed", "failed to decode", "Failed to decode",
                    "Unknown message type", "failed to receive", "[ERR]"):
            assert bad not in log, f"{a.name}: {bad!r} in its log:\n{a.log_tail()}"
    for p in c.py:
        stats = p.statistics()
        assert stats.get("suspicions", 0) == 0 and stats.get("refutations", 0) == 0, stats
        assert stats.get("probes_failed", 0) == 0, stats
        dropped = {k: v for k, v in stats.items() if k.startswith("dropped_") and v}
        assert dropped == {}, dropped
        assert stats["acks"] > start_stats[p.name].get("acks", 0) + 60
        for k in ("handoff_dropped", "udp_send_errors", "udp_receive_errors",
                  "events_dropped", "inbound_refused"):
            assert stats.get(k, 0) == 0, (k, stats)
