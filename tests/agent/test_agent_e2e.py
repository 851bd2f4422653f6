"""End to end: the real ``swimpy`` executable as subprocesses (agents and commands), on
127.0.0.1 with free ports. Every wait has a deadline; every agent is stopped by its PID."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.serfharness import (
    ProcessRegistry,
    free_ports,
    requires_serf,
    wait_until,
)

SWIMPY = [sys.executable, "-m", "swimpy"]
#: Deadlines for a cluster forming by joins to one seed at about the same time. A member
#: sometimes misses the transmit-limited gossip about another joiner (the local profile
#: sends each broadcast twice at this size) and learns of it only from a push/pull, which
#: first comes a random stagger of up to one push_pull_interval plus one interval after
#: start, as in memberlist (pushPullTrigger); `swimpy demo` showed the same (README of
#: the demo's limits). So allow two intervals: 2 x 15 s on the local profile, 2 x 30 s on
#: the lan profile. Most runs converge in well under a second; one CI run here took over
#: 15 s. Which race leaves the member out is not pinned down yet.
FORMING = 35.0
FORMING_LAN = 65.0
KEY1 = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(100, 132))).decode()


def swimpy(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SWIMPY, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


class AgentProc:
    def __init__(self, procs: ProcessRegistry, tmp: Path, name: str, *args: str,
                 profile: str = "local") -> None:
        self.name = name
        self.port, self.rpc_port = free_ports(2)
        self.rpc = f"127.0.0.1:{self.rpc_port}"
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = tmp / f"agent-{name}.log"
        self.args = ["agent", "--node", name, "--profile", profile, "--bind", self.address,
                     "--rpc-addr", self.rpc, "--log-level", "debug", *args]
        self.procs = procs
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child holds it; closed by exit
        self.proc = subprocess.Popen([*SWIMPY, *self.args], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        self.procs.add(self.proc)
        wait_until(self.ready, 20, f"agent {self.name} to serve its API",
                   context=self.log_tail)

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"agent {self.name} exited {self.proc.returncode}:\n"
                                 f"{self.log_tail()}")
        return swimpy("info", "--json", "--rpc-addr", self.rpc).returncode == 0

    def members(self) -> dict[str, dict[str, Any]]:
        out = swimpy("members", "--json", "--rpc-addr", self.rpc)
        assert out.returncode == 0, out.stderr
        return {m["name"]: m for m in json.loads(out.stdout)}

    def statuses(self) -> dict[str, str]:
        return {n: m["status"] for n, m in self.members().items()}

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """A non-zero exit and the error on one line (an agent that got as far as starting
    has logged before it, on the same stream, as serf agent does); never a traceback."""
    assert result.returncode != 0, result
    err = result.stderr.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("Error: "), err
    for f in fragments:
        assert f in last, (f, err)


def test_three_agents_kill_leave_and_members(procs: ProcessRegistry, tmp_path: Path) -> None:
    a = AgentProc(procs, tmp_path, "a", "--tag", "role=db")
    b = AgentProc(procs, tmp_path, "b", "--join", a.address)
    c = AgentProc(procs, tmp_path, "c", "--retry-join", a.address, "--retry-interval", "1s")
    agents = [a, b, c]
    wait_until(lambda: all(x.statuses() == {"a": "alive", "b": "alive", "c": "alive"}
                           for x in agents), FORMING, "all three agents to agree")
    m = b.members()["a"]
    assert m["tags"] == {"role": "db"} and m["addr"] == "127.0.0.1" and m["port"] == a.port
    assert isinstance(m["incarnation"], int) and base64.b64decode(m["meta_b64"])[0] == 0xFF
    table = swimpy("members", "--rpc-addr", a.rpc).stdout
    assert "role=db" in table and "alive" in table
    assert json.loads(swimpy("members", "--json", "--status", "alive", "--tag", "role=d.*",
                             "--rpc-addr", a.rpc).stdout)[0]["name"] == "a"

    c.kill()
    wait_until(lambda: a.statuses().get("c") == "dead" and b.statuses().get("c") == "dead",
               30, "c reported dead")
    out = swimpy("leave", "--rpc-addr", b.rpc)
    assert out.returncode == 0, out.stderr
    assert b.proc is not None
    b.proc.wait(15)  # the agent exits by itself after leaving
    wait_until(lambda: a.statuses().get("b") == "left", 10, "b reported left")
    info = json.loads(swimpy("info", "--json", "--rpc-addr", a.rpc).stdout)
    assert info["member"]["name"] == "a" and info["profile"] == "local"
    assert info["statistics"]["alive"] == 1


def test_sigterm_leaves_gracefully(procs: ProcessRegistry, tmp_path: Path) -> None:
    a = AgentProc(procs, tmp_path, "a")
    b = AgentProc(procs, tmp_path, "b", "--join", a.address)
    wait_until(lambda: a.statuses().get("b") == "alive", 10, "b alive")
    assert b.proc is not None
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(15) == 0
    wait_until(lambda: a.statuses().get("b") == "left", 10, "b left after SIGTERM")


def test_key_rotation_with_nobody_declared_dead(procs: ProcessRegistry,
                                                tmp_path: Path) -> None:
    agents: list[AgentProc] = []
    for name in ("a", "b", "c"):
        join = ["--join", agents[0].address] if agents else []
        agents.append(AgentProc(procs, tmp_path, name, "--encrypt", KEY1, "--keyring-file",
                                str(tmp_path / f"{name}.keyring"), *join))
    names = {"a", "b", "c"}
    wait_until(lambda: all(set(x.statuses()) == names and set(x.statuses().values()) == {"alive"}
                           for x in agents), FORMING, "encrypted cluster")
    for op, key in (("--install", KEY2), ("--use", KEY2), ("--remove", KEY1)):
        for x in agents:
            out = swimpy("keys", op, key, "--rpc-addr", x.rpc)
            assert out.returncode == 0, out.stderr
        wait_until(lambda: all(set(x.statuses().values()) == {"alive"} for x in agents), 5,
                   "everyone alive after " + op)
    for x in agents:
        listed = json.loads(swimpy("keys", "--list", "--json", "--rpc-addr", x.rpc).stdout)
        assert listed == {"keys": [KEY2], "primary": KEY2, "verify_incoming": True,
                          "verify_outgoing": True}
        assert json.loads((tmp_path / f"{x.name}.keyring").read_text()) == [KEY2]
        log = x.log_path.read_text()
        assert "member failed" not in log and "member suspected" not in log
    one_line_error(swimpy("keys", "--remove", KEY2, "--rpc-addr", agents[0].rpc), "primary")


def test_config_file_and_flags_combine(procs: ProcessRegistry, tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('node_name = "from-file"\nprofile = "local"\ntags = { role = "web", '
                   'zone = "a" }\n[config]\nprobe_interval = "2s"\n')
    a = AgentProc(procs, tmp_path, "from-flag", "--config", str(cfg), "--tag", "zone=b")
    info = json.loads(swimpy("info", "--json", "--rpc-addr", a.rpc).stdout)
    assert info["member"]["name"] == "from-flag"  # the flag wins
    assert info["member"]["tags"] == {"role": "web", "zone": "b"}
    assert info["profile"] == "local"


def test_event_handler_and_snapshot(procs: ProcessRegistry, tmp_path: Path) -> None:
    out = tmp_path / "events.txt"
    script = tmp_path / "handler.sh"
    script.write_text(f'#!/bin/sh\n{{ echo "$SERF_EVENT $SERF_SELF_NAME $SERF_SELF_ROLE '
                      f'$SERF_TAG_ZONE"; cat; }} >> {out}\n')
    script.chmod(0o755)
    snap = tmp_path / "a.snapshot"
    a = AgentProc(procs, tmp_path, "a", "--tag", "role=lb", "--tag", "zone=z1",
                  "--event-handler", f"member-join={script}", "--snapshot", str(snap))
    b = AgentProc(procs, tmp_path, "b", "--tag", "role=web")
    assert swimpy("join", b.address, "--rpc-addr", a.rpc).returncode == 0
    wait_until(lambda: out.exists() and "b\t127.0.0.1\tweb\trole=web" in out.read_text(), 10,
               "the handler to see b join")
    assert "member-join a lb z1" in out.read_text()
    wait_until(lambda: snap.exists() and "b" in json.loads(snap.read_text())["alive"], 10,
               "the snapshot to record b")
    # a crashes and comes back with no --join: it rejoins b from its snapshot
    a.kill()
    a.start()
    wait_until(lambda: "rejoined 1 known nodes from the snapshot" in a.log_tail(), 10,
               "a to rejoin from its snapshot", context=a.log_tail)
    wait_until(lambda: b.statuses().get("a") == "alive" and a.statuses().get("b") == "alive",
               15, "a and b to see each other again")


def test_errors_are_one_line(procs: ProcessRegistry, tmp_path: Path) -> None:
    a = AgentProc(procs, tmp_path, "a")
    one_line_error(swimpy("agent", "--node", "x", "--bind", a.address, "--rpc-addr",
                          f"127.0.0.1:{free_ports(1)[0]}", "--profile", "local"),
                   a.address)
    one_line_error(swimpy("agent", "--node", "x", "--encrypt", "AAAA"), "16, 24 or 32")
    one_line_error(swimpy("agent", "--node", "x", "--encrypt", "not base64!"), "base64")
    (port,) = free_ports(1)
    one_line_error(swimpy("agent", "--node", "x", "--profile", "local", "--bind",
                          "127.0.0.1:0", "--rpc-addr", f"127.0.0.1:{free_ports(1)[0]}",
                          "--join", f"127.0.0.1:{port}"), f"127.0.0.1:{port}")
    one_line_error(swimpy("members", "--rpc-addr", f"127.0.0.1:{port}"),
                   "is `swimpy agent` running? try --rpc-addr")
    bad = tmp_path / "bad.toml"
    bad.write_text('node_name = "x"\ntags = [\n')
    one_line_error(swimpy("agent", "--config", str(bad)), str(bad), "line")
    bad.write_text('node_name = "x"\n[config]\nprobe_interval = "fast"\n')
    one_line_error(swimpy("agent", "--config", str(bad)), str(bad), "config.probe_interval")
    bad.write_text('node_name = "x"\ntags = { role = 3 }\n')
    one_line_error(swimpy("agent", "--config", str(bad)), str(bad), "tags.role")
    one_line_error(swimpy("join", "127.0.0.1:1", "--rpc-addr", a.rpc), "127.0.0.1:1")


@requires_serf
def test_mixed_cluster_with_serf_agents(procs: ProcessRegistry, tmp_path: Path) -> None:
    s1 = procs.serf_agent("s1", tags={"role": "serf"})
    s2 = procs.serf_agent("s2")
    s2.join(s1.address)
    a = AgentProc(procs, tmp_path, "a", "--join", s1.address, "--tag", "role=py",
                  profile="lan")
    b = AgentProc(procs, tmp_path, "b", "--join", s2.address, profile="lan")
    names = {"s1", "s2", "a", "b"}

    def agree() -> bool:
        serf_alive = {m["name"] for m in s1.members() if m["status"] == "alive"}
        ours = {n for n, st in a.statuses().items() if st == "alive"}
        theirs = {n for n, st in b.statuses().items() if st == "alive"}
        return serf_alive == ours == theirs == names

    wait_until(agree, FORMING_LAN, "swimpy members and serf members to agree")
    assert s1.member("a") is not None and s1.member("a")["tags"] == {"role": "py"}  # type: ignore[index]
    assert a.members()["s1"]["tags"] == {"role": "serf"}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_metrics_endpoint(procs: ProcessRegistry, tmp_path: Path) -> None:
    a = AgentProc(procs, tmp_path, "a")
    out = subprocess.run(["curl", "-sf", f"http://{a.rpc}/metrics"], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    assert 'swimpy_members{pool="lan",status="alive"} 1.0' in out
    missing = subprocess.run(["curl", "-s", f"http://{a.rpc}/v1/nope"], capture_output=True,
                             text=True, timeout=10, check=True).stdout
    assert "no such endpoint" in json.loads(missing)["error"]


def test_wan_pool_monitor_json_logs_and_bad_requests(procs: ProcessRegistry,
                                                     tmp_path: Path) -> None:
    wan_a, wan_b = free_ports(2)
    a = AgentProc(procs, tmp_path, "a", "--dc", "dc1", "--wan-bind", f"127.0.0.1:{wan_a}",
                  "--log-json")
    b = AgentProc(procs, tmp_path, "b", "--dc", "dc2", "--wan-bind", f"127.0.0.1:{wan_b}",
                  "--wan-join", f"127.0.0.1:{wan_a}")
    wan = json.loads(swimpy("members", "--wan", "--json", "--rpc-addr", a.rpc).stdout)
    wait_until(lambda: {m["name"]: m["status"] for m in json.loads(
        swimpy("members", "--wan", "--json", "--rpc-addr", a.rpc).stdout)}
        == {"a.dc1": "alive", "b.dc2": "alive"}, 10, "the WAN pool to form")
    assert set(a.statuses()) == {"a"} and set(b.statuses()) == {"b"}  # LAN pools stay apart
    assert wan[0]["name"].endswith(".dc1")
    # JSON log lines
    first = a.log_path.read_text().splitlines()[0]
    assert json.loads(first)["@level"] == "info"
    # monitor streams what the agent logs from now on
    mon = subprocess.Popen([*SWIMPY, "monitor", "--log-level", "debug", "--rpc-addr", a.rpc],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.add(mon)
    assert mon.stdout is not None
    seen: list[str] = []
    # read on a thread: a blocking readline must never hang the test
    reader = threading.Thread(target=lambda: seen.extend(iter(mon.stdout.readline, "")),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    updates = iter(range(1000))

    def monitor_shows_an_update() -> bool:
        # the monitor subscribes some time after it starts: update until it shows one
        assert swimpy("tags", "--set", f"k={next(updates)}", "--rpc-addr", a.rpc).returncode == 0
        return any("member updated" in line for line in seen)

    wait_until(monitor_shows_an_update, 15, "monitor output",
               context=lambda: "".join(seen[-20:]))
    # bad requests get a 4xx with a JSON message, never a crash
    url = f"http://{a.rpc}"
    for method, path, body, code in (
            ("PUT", "/v1/agent/join", "not json", 400),
            ("PUT", "/v1/agent/join", '{"addresses": "x"}', 400),
            ("PUT", "/v1/agent/keyring/install", '{"key": "AAAA"}', 400),
            ("PUT", "/v1/agent/tags", '{"set": {"a": 1}}', 400),
            ("GET", "/v1/agent/join", "", 405),
            ("GET", "/v1/nothing", "", 404)):
        out = subprocess.run(["curl", "-s", "-o", "/dev/stderr", "-w", "%{http_code}", "-X",
                              method, "--data", body, url + path], capture_output=True,
                             text=True, timeout=10, check=False)
        assert out.stdout == str(code), (method, path, out)
        assert "error" in json.loads(out.stderr)
    assert a.statuses() == {"a": "alive"}


def test_turning_encryption_on_in_a_live_cluster(procs: ProcessRegistry,
                                                 tmp_path: Path) -> None:
    agents: list[AgentProc] = []
    for name in ("a", "b", "c"):
        join = ["--join", agents[0].address] if agents else []
        agents.append(AgentProc(procs, tmp_path, name, *join))

    def all_alive() -> bool:
        return all(x.statuses() == {"a": "alive", "b": "alive", "c": "alive"} for x in agents)

    wait_until(all_alive, FORMING, "a plain cluster")
    steps = [("--verify", "off,off"), ("--install", KEY1), ("--verify", "off,on"),
             ("--verify", "on,on")]
    for op, value in steps:
        for x in agents:
            out = swimpy("keys", op, value, "--rpc-addr", x.rpc)
            assert out.returncode == 0, out.stderr
        wait_until(all_alive, 5, f"everyone alive after {op} {value}")
    for x in agents:
        log = x.log_path.read_text()
        assert "member failed" not in log and "member suspected" not in log, x.name
    # a plain newcomer is now refused
    plain = AgentProc(procs, tmp_path, "plain")
    one_line_error(swimpy("join", agents[0].address, "--rpc-addr", plain.rpc))
