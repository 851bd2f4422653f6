"""The agent's settings, event-handler environment, snapshot and client addresses:
unit tests without processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from swimpy.agent.client import ClientError, _url
from swimpy.agent.events import member_line, script_env
from swimpy.agent.settings import (
    AgentSettings,
    EventHandler,
    SettingsError,
    from_mapping,
    load_file,
    merge,
)
from swimpy.agent.snapshot import Snapshot
from swimpy.core.actions import MemberEvent
from swimpy.core.member import EventKind, Member, State, encode_serf_tags


def test_file_values_and_flags_combine(tmp_path: Path) -> None:
    f = tmp_path / "a.toml"
    f.write_text('node_name = "n"\nbind = "127.0.0.1:9000"\ntags = { role = "web" }\n'
                 'retry_interval = "5s"\n[config]\nprobe_interval = "2s"\n')
    s = merge(load_file(str(f)), {"node_name": "flag", "tags": {"zone": "a"}})
    cfg = s.lan_config()
    assert (cfg.name, cfg.bind_addr, cfg.bind_port, cfg.probe_interval) == (
        "flag", "127.0.0.1", 9000, 2.0)
    assert s.tags == {"role": "web", "zone": "a"} and s.retry_interval == 5.0


@pytest.mark.parametrize(("text", "fragments"), [
    ('tags = [\n', ["line 2"]),
    ('node_name = "x"\nbad line\n', ["line 2"]),
    ('[config]\nprobe_interval = "fast"\n', ["config.probe_interval"]),
    ('[config]\nprofile = "wan"\n', ["config.profile", "'profile'"]),
    ('[config]\nbind_port = 1\n', ["config.bind_port", "'bind'"]),
    ('[config]\nprobe_intervall = 1\n', ["config.probe_intervall", "did you mean"]),
    ('tags = { role = 3 }\n', ["tags.role"]),
    ('bind = "localhost:7000"\n', ["bind", "not an IP address"]),
    ('wan_advertise = "10.0.0.1:1"\n', ["dc"]),
    ('retry_max = -1\n', ["retry_max"]),
    ('encrypt_key = "AAAA"\n', ["encrypt_key", "16, 24 or 32"]),
    ('event_handlers = ["member-explode=x"]\n', ["event_handlers[0]", "member-explode"]),
    ('rpc_addr = "127.0.0.1:0"\n', ["rpc_addr"]),
    ('nonsense = 1\n', ["nonsense", "unknown key"]),
])
def test_bad_files_name_the_file_and_the_key(tmp_path: Path, text: str,
                                             fragments: list[str]) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_file(str(f))
    message = str(info.value)
    assert message.startswith(f"{f}: ") and message.count(str(f)) == 1, message
    for frag in fragments:
        assert frag in message


def test_retry_interval_flag_error_names_the_flag() -> None:
    with pytest.raises(SettingsError, match="--retry-interval"):
        from swimpy.agent.settings import _seconds
        _seconds("soon", "--retry-interval", "")


def test_wan_pool_gets_its_own_table() -> None:
    s = from_mapping({"node_name": "n", "dc": "dc1", "wan_config": {"probe_interval": "7s"},
                      "config": {"probe_interval": "2s"}}, "x.toml")
    wan = s.wan_config()
    assert wan is not None and (wan.name, wan.profile, wan.probe_interval) == ("n.dc1", "wan", 7.0)
    assert s.lan_config().probe_interval == 2.0


def test_event_handler_environment_and_stdin() -> None:
    env = script_env("member-join", "me", {"role": "lb", "dc-name": "east"})
    assert env["SERF_EVENT"] == "member-join" and env["SERF_SELF_ROLE"] == "lb"
    assert env["SERF_TAG_DC_NAME"] == "east"
    m = _member("n\t1", "10.0.0.1", 7946, encode_serf_tags({"role": "web", "a": "b"}))
    line = member_line(MemberEvent(EventKind.JOINED, m))
    assert line == "n\\t1\t10.0.0.1\tweb\trole=web,a=b\n"
    assert EventHandler.parse("member-join,member-leave=run.sh", "f", "k").events == (
        "member-join", "member-leave")
    assert EventHandler.parse("run.sh", "f", "k").wants("member-reap")


def test_snapshot_writes_the_last_change_and_a_leave(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    snap = Snapshot(str(path))
    a = _member("a", "10.0.0.1", 1)
    b = _member("b", "::1", 2)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(snap.run)
            snap.record([a, b])
            await trio.sleep(0.01)
            snap.record([a])  # within the second: written later, not lost
            await trio.sleep(1.1)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert json.loads(path.read_text())["alive"] == {"a": "10.0.0.1:1"}
    snap.record([a, b])
    snap.mark_left()
    data = json.loads(path.read_text())
    assert data["left"] is True and "b" in data["alive"]
    assert Snapshot(str(path)).rejoin_addresses(exclude="a") == []


def test_client_addresses() -> None:
    assert _url("127.0.0.1:8400", "/x") == "http://127.0.0.1:8400/x"
    assert _url("::1", "/x") == "http://[::1]:8400/x"
    assert _url("[::1]:9", "/x") == "http://[::1]:9/x"
    assert _url("localhost", "/x") == "http://localhost:8400/x"
    for bad in ("foo:bar", "[::1", "h:0", ":80"):
        with pytest.raises(ClientError, match="rpc-addr"):
            _url(bad, "/x")


def test_default_settings_are_valid() -> None:
    s = AgentSettings(node_name="x")
    assert s.lan_config().bind_port == 8301 and s.wan_config() is None


def _member(name: str, addr: str, port: int, meta: bytes = b"") -> Member:
    import ipaddress

    return Member(name, addr, port, meta, 1, State.ALIVE, 0.0, bytes([1, 5, 2, 2, 5, 4]),
                  ipaddress.ip_address(addr).packed)
