"""The serf harness itself, against real ``serf agent`` processes only (no swimpy node)."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.runtime.serfharness import (
    ProcessRegistry,
    SerfAgent,
    SerfAgentExited,
    SerfCommandError,
    free_port,
    free_ports,
    requires_serf,
    serf_keygen,
    wait_for_status,
    wait_until,
)


def _gone(pid: int) -> bool:
    """True if no process (not even a zombie of ours) has this PID."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --- no serf needed ------------------------------------------------------------------------


def test_free_ports_are_distinct_and_bindable_for_tcp_and_udp() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in [*ports, free_port()]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, socket.socket(
            socket.AF_INET, socket.SOCK_DGRAM
        ) as udp:
            tcp.bind(("127.0.0.1", port))
            udp.bind(("127.0.0.1", port))


def test_wait_until_returns_elapsed_and_times_out_with_context() -> None:
    start = time.monotonic()
    assert wait_until(lambda: time.monotonic() - start > 0.2, 5, "0.2 s", interval=0.01) >= 0.2

    def flaky() -> bool:
        raise SerfCommandError(["serf", "members"], 1, "connection refused")

    with pytest.raises(AssertionError) as err:
        wait_until(flaky, 0.3, "the moon", ignore=(SerfCommandError,), context=lambda: "ctx!")
    text = str(err.value)
    assert text.startswith("timed out after 0.3s waiting for the moon")
    assert "connection refused" in text and "ctx!" in text
    with pytest.raises(ZeroDivisionError):  # not ignored: propagates at once
        wait_until(lambda: 1 / 0 == 0, 5, "never")


def test_registry_stops_popen_by_pid_and_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True)\nwhile True: time.sleep(1)"
    )
    reg = ProcessRegistry(tmp_path, term_timeout=0.5)
    polite = reg.popen([sys.executable, "-c", "import time; time.sleep(60)"], name="polite")
    rude = reg.popen([sys.executable, "-c", stubborn], name="rude")
    wait_until(lambda: "ready" in reg.log_path("rude").read_text(), 10, "rude to ignore SIGTERM")
    reg.close()
    assert polite.returncode == -15 and rude.returncode == -9
    assert _gone(polite.pid) and _gone(rude.pid)
    reg.close()  # idempotent


# --- serf agents ---------------------------------------------------------------------------


def _cluster(procs: ProcessRegistry, names: str) -> list[SerfAgent]:
    agents = [procs.serf_agent(n, tags={"role": f"r{n}"}) for n in names]
    for agent in agents[1:]:
        assert agent.join(agents[0].address) == 1
    wait_for_status(agents, list(names), "alive", timeout=10)
    return agents


@requires_serf
def test_three_agents_join_and_list_each_other_with_tags(procs: ProcessRegistry) -> None:
    a, b, c = _cluster(procs, "abc")
    for agent in (a, b, c):
        rows = {m["name"]: m for m in agent.members()}
        assert set(rows) == {"a", "b", "c"}
        for n, other in zip("abc", (a, b, c), strict=True):
            assert rows[n] == {
                "name": n, "addr": "127.0.0.1", "port": other.port,
                "status": "alive", "tags": {"role": f"r{n}"},
            }
    assert "EventMemberJoin: c 127.0.0.1" in a.log_text()
    assert a.address == f"127.0.0.1:{a.port}" and a.pid > 0
    with pytest.raises(SerfCommandError, match="connection refused"):
        a.join(f"127.0.0.1:{free_port()}")


@requires_serf
def test_sigkill_is_reported_failed_and_restart_rejoins(procs: ProcessRegistry) -> None:
    a, b, c = _cluster(procs, "abc")
    pid = c.pid
    t0 = time.monotonic()
    c.kill()
    assert _gone(pid) and not c.running
    seen: dict[str, float] = {}

    def both_failed() -> bool:
        for agent in (a, b):
            if agent.name not in seen and agent.statuses().get("c") == "failed":
                seen[agent.name] = time.monotonic() - t0
        return len(seen) == 2

    wait_until(both_failed, 15, "a and b to report c failed", interval=0.05)
    print(f"\nSIGKILL -> failed: a {seen['a']:.2f}s, b {seen['b']:.2f}s")
    # LAN profile, 3 members: 4 s suspicion minimum plus the probe that raised it
    assert all(3.0 < t < 12.0 for t in seen.values()), seen

    c.restart()
    assert c.pid != pid and c.starts == 2
    c.wait_ready()
    c.join(a.address)
    took = wait_for_status([a, b, c], "c", "alive", timeout=10)
    print(f"restart -> alive again after {took:.2f}s")
    log = c.log_text()
    assert log.count("=== serfharness start #") == 2


@requires_serf
def test_encrypted_pair_joins_and_plain_agent_is_refused(procs: ProcessRegistry) -> None:
    key = serf_keygen()
    assert len(key) == 44  # base64 of 32 bytes
    e0 = procs.serf_agent("e0", encrypt=key)
    e1 = procs.serf_agent("e1", encrypt=key)
    e1.join(e0.address)
    wait_for_status([e0, e1], ["e0", "e1"], "alive", timeout=10)
    assert "Encrypted: true" in e0.log_text()
    plain = procs.serf_agent("plain")
    t0 = time.monotonic()
    with pytest.raises(SerfCommandError) as err:
        plain.join(e0.address)
    print(f"\nplain join refused after {time.monotonic() - t0:.2f}s: {err.value}")
    wait_until(
        lambda: "Encryption is configured but remote state is not encrypted" in e0.log_text(),
        5, "e0 to log the unencrypted join",
    )
    assert {m["name"] for m in e0.members()} == {"e0", "e1"}


@requires_serf
def test_leave_stop_and_start_failure(procs: ProcessRegistry) -> None:
    a, b = _cluster(procs, "ab")
    t0 = time.monotonic()
    b.leave()
    print(f"\nleave took {time.monotonic() - t0:.2f}s")
    assert b.returncode == 0
    wait_for_status([a], "b", "left", timeout=5)
    pid = a.pid
    a.stop()
    a.stop()  # idempotent
    assert _gone(pid)
    # a second agent on a's taken gossip port dies at once: wait_ready says so with the log
    holder = procs.serf_agent("holder")
    clash = procs.serf_agent("clash", port=holder.port, start=False)
    clash.start()
    with pytest.raises(SerfAgentExited, match="address already in use"):
        clash.wait_ready(10)
