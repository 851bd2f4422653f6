"""Config validation and the LAN / WAN / local profiles (shared/spec/CONFIG.md)."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import pickle
import tomllib
from typing import Any

import pytest

from swimpy.profiles import (
    PROFILES,
    Config,
    ConfigError,
    by_name,
    from_mapping,
    lan,
    local,
    parse_duration,
    wan,
)

FIELD_NAMES = {f.name for f in dataclasses.fields(Config)}

#: memberlist DefaultLANConfig (CONFIG.md section 1) plus serf DefaultConfig (section 3.1).
LAN_VALUES: dict[str, Any] = {
    "name": "",
    "bind_addr": "0.0.0.0",
    "advertise_addr": "",
    "advertise_port": None,
    "protocol_version": 2,
    "delegate_protocol_min": 2,
    "delegate_protocol_max": 5,
    "delegate_protocol_version": 4,
    "tcp_timeout": 10.0,
    "indirect_checks": 3,
    "retransmit_mult": 4,
    "suspicion_mult": 4,
    "suspicion_max_timeout_mult": 6,
    "push_pull_interval": 30.0,
    "probe_interval": 1.0,
    "probe_timeout": 0.5,
    "disable_tcp_pings": False,
    "awareness_max_multiplier": 8,
    "gossip_interval": 0.2,
    "gossip_nodes": 3,
    "gossip_to_the_dead_time": 30.0,
    "gossip_verify_incoming": True,
    "gossip_verify_outgoing": True,
    "enable_compression": True,
    "secret_keys": (),
    "label": "",
    "skip_inbound_label_check": False,
    "handoff_queue_depth": 1024,
    "udp_buffer_size": 1400,
    "dead_node_reclaim_time": 0.0,
    "cidrs_allowed": (),
    "meta_max_size": 512,
    "reconnect_interval": 30.0,
    "reconnect_timeout": 86400.0,
    "tombstone_timeout": 86400.0,
    "reap_interval": 15.0,
}

#: memberlist DefaultWANConfig overrides (CONFIG.md section 1, bold WAN column).
WAN_CHANGES: dict[str, Any] = {
    "tcp_timeout": 30.0,
    "suspicion_mult": 6,
    "push_pull_interval": 60.0,
    "probe_interval": 5.0,
    "probe_timeout": 3.0,
    "gossip_interval": 0.5,
    "gossip_nodes": 4,
    "gossip_to_the_dead_time": 60.0,
}

#: memberlist DefaultLocalConfig overrides (CONFIG.md section 1, bold Local column).
LOCAL_CHANGES: dict[str, Any] = {
    "tcp_timeout": 1.0,
    "indirect_checks": 1,
    "retransmit_mult": 2,
    "suspicion_mult": 3,
    "push_pull_interval": 15.0,
    "probe_timeout": 0.2,
    "gossip_interval": 0.1,
    "gossip_to_the_dead_time": 15.0,
}

KEY16 = bytes(range(16))
KEY24 = bytes(range(24))
KEY32 = bytes(range(32))


def _assert_values(cfg: Config, expected: dict[str, Any]) -> None:
    actual = {name: getattr(cfg, name) for name in expected}
    assert actual == expected


# --- defaults and profiles -------------------------------------------------------------------


def test_lan_values_cover_every_field_but_port_and_profile() -> None:
    assert set(LAN_VALUES) | {"bind_port", "profile"} == FIELD_NAMES


def test_default_config_is_memberlist_lan_on_memberlist_port() -> None:
    cfg = Config()
    _assert_values(cfg, LAN_VALUES)
    assert cfg.bind_port == 7946
    assert cfg.profile == "lan"


def test_lan_profile_matches_memberlist_default_lan_config_on_consul_lan_port() -> None:
    cfg = lan()
    _assert_values(cfg, LAN_VALUES)
    assert cfg.bind_port == 8301
    assert cfg.profile == "lan"


def test_wan_profile_matches_memberlist_default_wan_config_on_consul_wan_port() -> None:
    cfg = wan()
    _assert_values(cfg, {**LAN_VALUES, **WAN_CHANGES})
    assert cfg.bind_port == 8302
    assert cfg.profile == "wan"


def test_local_profile_matches_memberlist_default_local_config() -> None:
    cfg = local()
    _assert_values(cfg, {**LAN_VALUES, **LOCAL_CHANGES})
    assert cfg.bind_port == 7946
    assert cfg.profile == "local"


def test_wan_docstring_mentions_consul_gossip_nodes_quirk() -> None:
    assert wan.__doc__ is not None
    assert "gossip_nodes=3" in wan.__doc__


@pytest.mark.parametrize("name", ["lan", "wan", "local"])
def test_by_name_returns_the_named_profile(name: str) -> None:
    assert by_name(name) == PROFILES[name]()
    assert by_name(name).profile == name


def test_by_name_passes_overrides_through() -> None:
    assert by_name("wan", gossip_nodes=3).gossip_nodes == 3


@pytest.mark.parametrize("bad", ["LAN", "dev", "", "lan "])
def test_by_name_rejects_unknown_profile_naming_profile(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        by_name(bad)
    assert info.value.field == "profile"
    assert repr(bad) in str(info.value)
    assert "'lan', 'wan', 'local'" in str(info.value)


# --- every field can be overridden -----------------------------------------------------------

#: A valid, non-default value for every field.
OVERRIDES: dict[str, Any] = {
    "name": "node-1",
    "bind_addr": "::",
    "bind_port": 0,
    "advertise_addr": "10.0.0.5",
    "advertise_port": 9000,
    "protocol_version": 5,
    "delegate_protocol_min": 0,
    "delegate_protocol_max": 6,
    "delegate_protocol_version": 3,
    "tcp_timeout": 2.5,
    "indirect_checks": 0,
    "retransmit_mult": 1,
    "suspicion_mult": 1,
    "suspicion_max_timeout_mult": 1,
    "push_pull_interval": 0.0,
    "probe_interval": 7.0,
    "probe_timeout": 0.1,
    "disable_tcp_pings": True,
    "awareness_max_multiplier": 1,
    "gossip_interval": 0.0,
    "gossip_nodes": 0,
    "gossip_to_the_dead_time": 0.0,
    "gossip_verify_incoming": False,
    "gossip_verify_outgoing": False,
    "enable_compression": False,
    "secret_keys": (KEY32, KEY16, KEY24),
    "label": "x" * 255,
    "skip_inbound_label_check": True,
    "handoff_queue_depth": 1,
    "udp_buffer_size": 65507,
    "dead_node_reclaim_time": 30.0,
    "cidrs_allowed": ("10.0.0.0/8", "fd00::/8", "192.168.1.7/24"),
    "meta_max_size": 65535,
    "reconnect_interval": 1.0,
    "reconnect_timeout": 259200.0,
    "tombstone_timeout": 1.0,
    "reap_interval": 1.0,
    "profile": "custom",
}


def test_override_table_covers_every_field() -> None:
    assert set(OVERRIDES) == FIELD_NAMES


@pytest.mark.parametrize("factory", [lan, wan, local])
@pytest.mark.parametrize("field", sorted(OVERRIDES))
def test_every_field_can_be_overridden(factory: Any, field: str) -> None:
    cfg = factory(**{field: OVERRIDES[field]})
    assert getattr(cfg, field) == OVERRIDES[field]


def test_all_overrides_together_are_valid() -> None:
    cfg = lan(**OVERRIDES)
    _assert_values(cfg, OVERRIDES)


@pytest.mark.parametrize("factory", [lan, wan, local, Config().replace])
def test_unknown_override_raises_config_error_naming_the_key(factory: Any) -> None:
    with pytest.raises(ConfigError) as info:
        factory(probe_intervall=1.0)
    assert info.value.field == "probe_intervall"
    assert "probe_intervall" in str(info.value)
    assert "did you mean 'probe_interval'" in str(info.value)


def test_unknown_override_without_close_match_lists_valid_keys() -> None:
    with pytest.raises(ConfigError, match="valid keys: ") as info:
        lan(zzz=1)
    assert info.value.field == "zzz"


def test_by_name_unknown_override_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        by_name("lan", colour="blue")
    assert info.value.field == "colour"


# --- replace and derived properties ----------------------------------------------------------


def test_replace_returns_a_validated_copy() -> None:
    cfg = lan()
    changed = cfg.replace(probe_interval=2, name="a")
    assert changed.probe_interval == 2.0
    assert changed.name == "a"
    assert cfg.probe_interval == 1.0
    with pytest.raises(ConfigError) as info:
        cfg.replace(probe_timeout=5.0)
    assert info.value.field == "probe_timeout"


def test_config_is_frozen_and_slotted() -> None:
    cfg = lan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "x"  # type: ignore[misc]
    assert not hasattr(cfg, "__dict__")


def test_config_is_hashable_and_compares_by_value() -> None:
    assert hash(lan()) == hash(lan())
    assert lan() == lan()
    assert lan() != wan()


def test_int_seconds_are_stored_as_float() -> None:
    cfg = lan(probe_interval=2, tcp_timeout=3, reap_interval=1)
    assert type(cfg.probe_interval) is float
    assert type(cfg.tcp_timeout) is float
    assert cfg.reap_interval == 1.0


def test_effective_advertise_port_defaults_to_bind_port() -> None:
    assert lan().effective_advertise_port == 8301
    assert lan(bind_port=0).effective_advertise_port == 0
    assert lan(advertise_port=9999).effective_advertise_port == 9999


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, bytes([1, 5, 2, 2, 5, 4])),  # Consul (serf protocol 4)
        ({"delegate_protocol_version": 5}, bytes([1, 5, 2, 2, 5, 5])),  # serf agent
        (
            {
                "delegate_protocol_min": 0,
                "delegate_protocol_max": 0,
                "delegate_protocol_version": 0,
            },
            bytes([1, 5, 2, 0, 0, 0]),
        ),  # plain memberlist application
        ({"protocol_version": 5}, bytes([1, 5, 5, 2, 5, 4])),
    ],
)
def test_vsn_is_memberlists_six_byte_version_vector(
    overrides: dict[str, Any], expected: bytes
) -> None:
    vsn = lan(**overrides).vsn
    assert vsn == expected
    assert len(vsn) == 6


def test_allowed_networks_parses_cidrs() -> None:
    cfg = lan(cidrs_allowed=("10.1.2.3/8", "fd00::/8"))
    assert cfg.allowed_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert lan().allowed_networks == ()


def test_secret_keys_are_not_in_repr() -> None:
    cfg = lan(secret_keys=(b"S" * 32,))
    assert "SSSS" not in repr(cfg)
    assert "secret_keys" not in repr(cfg)


# --- validation ------------------------------------------------------------------------------

INVALID: list[tuple[str, Any]] = [
    ("name", None),
    ("name", 5),
    ("bind_addr", ""),
    ("bind_addr", "localhost"),
    ("bind_addr", "300.1.1.1"),
    ("bind_addr", None),
    ("advertise_addr", "my-host"),
    ("advertise_addr", 10),
    ("bind_port", -1),
    ("bind_port", 65536),
    ("bind_port", "7946"),
    ("bind_port", 7946.0),
    ("bind_port", True),
    ("advertise_port", 0),
    ("advertise_port", 70000),
    ("advertise_port", "80"),
    ("protocol_version", 0),
    ("protocol_version", 6),
    ("protocol_version", True),
    ("delegate_protocol_min", -1),
    ("delegate_protocol_min", 256),
    ("delegate_protocol_max", 256),
    ("delegate_protocol_version", 300),
    ("tcp_timeout", 0),
    ("tcp_timeout", -1.0),
    ("tcp_timeout", float("nan")),
    ("tcp_timeout", float("inf")),
    ("tcp_timeout", "10s"),
    ("tcp_timeout", True),
    ("indirect_checks", -1),
    ("indirect_checks", 1.5),
    ("retransmit_mult", 0),
    ("suspicion_mult", 0),
    ("suspicion_max_timeout_mult", 0),
    ("push_pull_interval", -1.0),
    ("probe_interval", 0),
    ("probe_interval", -0.5),
    ("probe_timeout", 0),
    ("probe_timeout", 1.5),
    ("disable_tcp_pings", 1),
    ("disable_tcp_pings", "false"),
    ("awareness_max_multiplier", 0),
    ("gossip_interval", -0.1),
    ("gossip_nodes", -1),
    ("gossip_nodes", False),
    ("gossip_to_the_dead_time", -1),
    ("gossip_verify_incoming", 0),
    ("gossip_verify_outgoing", None),
    ("enable_compression", "yes"),
    ("secret_keys", [KEY32]),
    ("secret_keys", KEY32),
    ("secret_keys", (b"short",)),
    ("secret_keys", (b"x" * 33,)),
    ("secret_keys", ("A" * 32,)),
    ("secret_keys", (KEY16, KEY16)),
    ("label", "x" * 256),
    ("label", "é" * 128),
    ("label", b"label"),
    ("skip_inbound_label_check", 1),
    ("handoff_queue_depth", 0),
    ("udp_buffer_size", 63),
    ("udp_buffer_size", 65508),
    ("dead_node_reclaim_time", -1),
    ("cidrs_allowed", ["10.0.0.0/8"]),
    ("cidrs_allowed", ("10.0.0.0/33",)),
    ("cidrs_allowed", ("not-a-network",)),
    ("cidrs_allowed", ("",)),
    ("cidrs_allowed", (10,)),
    ("meta_max_size", -1),
    ("meta_max_size", 65536),
    ("reconnect_interval", 0),
    ("reconnect_timeout", 0),
    ("tombstone_timeout", -5),
    ("reap_interval", 0),
    ("profile", None),
]


def test_invalid_table_covers_every_field() -> None:
    assert {field for field, _ in INVALID} == FIELD_NAMES


@pytest.mark.parametrize(("field", "value"), INVALID)
def test_invalid_value_raises_config_error_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        lan(**{field: value})
    err = info.value
    assert err.field == field
    assert field in str(err)
    assert "expected" in str(err) or "list each key once" in str(err)
    assert isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("field", "value"),
    [(f, v) for f, v in INVALID if f not in ("secret_keys", "label", "cidrs_allowed")],
)
def test_invalid_value_message_shows_the_value(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        lan(**{field: value})
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("keys", [(b"S" * 33,), [b"S" * 32], (b"S" * 32, b"S" * 32)])
def test_invalid_secret_keys_message_never_shows_key_material(keys: Any) -> None:
    with pytest.raises(ConfigError) as info:
        lan(secret_keys=keys)
    assert info.value.field == "secret_keys"
    assert "SSS" not in str(info.value)


def test_probe_timeout_equal_to_probe_interval_is_allowed() -> None:
    assert lan(probe_interval=0.5, probe_timeout=0.5).probe_timeout == 0.5


def test_probe_timeout_above_probe_interval_explains_the_limit() -> None:
    with pytest.raises(ConfigError, match=r"probe_timeout=1\.5 .*probe_interval \(1\.0"):
        lan(probe_timeout=1.5)


def test_delegate_version_must_lie_within_min_and_max() -> None:
    with pytest.raises(ConfigError) as info:
        lan(delegate_protocol_version=1)
    assert info.value.field == "delegate_protocol_version"
    with pytest.raises(ConfigError) as info:
        lan(delegate_protocol_min=5, delegate_protocol_max=4)
    assert info.value.field == "delegate_protocol_min"


def test_label_limit_counts_utf8_bytes() -> None:
    assert lan(label="é" * 127).label == "é" * 127  # 254 bytes
    with pytest.raises(ConfigError, match="256 bytes"):
        lan(label="é" * 128)


def test_config_error_pickles() -> None:
    err = ConfigError("probe_interval", "bad", source="a.toml")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.field, copy.source, str(copy)) == ("probe_interval", "a.toml", "a.toml: bad")


# --- parse_duration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1, 1.0),
        (0.25, 0.25),
        ("0", 0.0),
        ("200ms", 0.2),
        ("1s", 1.0),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("24h", 86400.0),
        ("72h", 259200.0),
        ("1h30m", 5400.0),
        ("1m30.5s", 90.5),
        ("500us", 0.0005),
        ("500\u00b5s", 0.0005),
        ("100ns", 1e-7),
        (".5s", 0.5),
        (" 3s ", 3.0),
        ("-1s", -1.0),
        ("+2s", 2.0),
    ],
)
def test_parse_duration_accepts_seconds_and_go_duration_strings(
    value: str | float, seconds: float
) -> None:
    assert parse_duration(value, "probe_interval") == seconds


@pytest.mark.parametrize(
    "value", ["", "1", "1.5", "s", "1x", "1 s", "1sec", "ms", "1s2", "--1s", "1.2.3s", "nan"]
)
def test_parse_duration_rejects_malformed_strings_naming_the_field(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(value, "gossip_interval")
    assert info.value.field == "gossip_interval"
    assert repr(value) in str(info.value)


def test_parse_duration_suggests_a_unit_for_bare_numbers() -> None:
    with pytest.raises(ConfigError, match=r"add a unit, e\.g\. '30s'"):
        parse_duration("30", "push_pull_interval")


@pytest.mark.parametrize("value", [True, None, [1], float("inf"), float("nan")])
def test_parse_duration_rejects_non_durations(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(value, "tcp_timeout")
    assert info.value.field == "tcp_timeout"


# --- from_mapping ----------------------------------------------------------------------------


def test_from_mapping_empty_is_lan() -> None:
    assert from_mapping({}) == lan()


@pytest.mark.parametrize("name", ["lan", "wan", "local"])
def test_from_mapping_profile_key_chooses_the_base(name: str) -> None:
    assert from_mapping({"profile": name}) == by_name(name)


def test_from_mapping_reads_a_toml_file() -> None:
    key = base64.b64encode(KEY32).decode()
    old = base64.b64encode(KEY16).decode()
    text = f"""
        profile = "wan"
        name = "dc1-server"
        bind_port = 9302
        probe_interval = "2s"
        probe_timeout = "1500ms"
        gossip_interval = 0.25
        reconnect_timeout = "72h"
        gossip_nodes = 3
        secret_keys = ["{key}", "{old}"]
        cidrs_allowed = ["10.0.0.0/8"]
        enable_compression = false
        label = "prod"
    """
    cfg = from_mapping(tomllib.loads(text), source="swimpy.toml")
    assert cfg.profile == "wan"
    assert cfg.name == "dc1-server"
    assert cfg.bind_port == 9302
    assert cfg.probe_interval == 2.0
    assert cfg.probe_timeout == 1.5
    assert cfg.gossip_interval == 0.25
    assert cfg.reconnect_timeout == 259200.0
    assert cfg.gossip_nodes == 3
    assert cfg.secret_keys == (KEY32, KEY16)
    assert cfg.cidrs_allowed == ("10.0.0.0/8",)
    assert cfg.enable_compression is False
    assert cfg.label == "prod"
    # WAN values not mentioned are kept.
    assert cfg.push_pull_interval == 60.0
    assert cfg.tcp_timeout == 30.0


def test_from_mapping_accepts_a_single_base64_key() -> None:
    cfg = from_mapping({"secret_keys": base64.b64encode(KEY24).decode()})
    assert cfg.secret_keys == (KEY24,)


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"probe_interval": "fast"}, "probe_interval", "'fast'"),
        ({"probe_interval": "1"}, "probe_interval", "add a unit"),
        ({"probe_timeout": "2s"}, "probe_timeout", "probe_interval"),
        ({"tcp_timeout": "-1s"}, "tcp_timeout", "-1.0"),
        ({"bind_port": "8301"}, "bind_port", "'8301'"),
        ({"bind_port": 70000}, "bind_port", "70000"),
        ({"enable_compression": "yes"}, "enable_compression", "'yes'"),
        ({"secret_keys": ["not base64!"]}, "secret_keys", "not valid base64"),
        ({"secret_keys": [base64.b64encode(b"x" * 10).decode()]}, "secret_keys", "10 bytes"),
        ({"secret_keys": 5}, "secret_keys", "int"),
        ({"secret_keys": [5]}, "secret_keys", "secret_keys[0]"),
        ({"cidrs_allowed": "10.0.0.0/8"}, "cidrs_allowed", "tuple"),
        ({"cidrs_allowed": ["10.0.0.0/99"]}, "cidrs_allowed", "10.0.0.0/99"),
        ({"profile": "dev"}, "profile", "'dev'"),
        ({"profile": 1}, "profile", "1"),
        ({"probe_intervals": "1s"}, "probe_intervals", "did you mean 'probe_interval'"),
        ({"colour": "blue"}, "colour", "unknown configuration key 'colour'"),
    ],
)
def test_from_mapping_errors_name_the_key_and_source(
    data: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(data, source="cluster.toml")
    err = info.value
    assert err.field == field
    assert err.source == "cluster.toml"
    message = str(err)
    assert message.startswith("cluster.toml: ")
    assert field in message
    assert fragment in message


def test_from_mapping_default_source_is_named() -> None:
    with pytest.raises(ConfigError, match=r"^<config>: "):
        from_mapping({"gossip_nodes": -1})


def test_from_mapping_never_echoes_base64_key_text() -> None:
    secret = "c2VjcmV0c2VjcmV0c2VjcmV0"  # valid base64 of an 18-byte value
    with pytest.raises(ConfigError) as info:
        from_mapping({"secret_keys": [secret]})
    assert secret not in str(info.value)
    bad = "c2VjcmV0!!!"
    with pytest.raises(ConfigError) as info:
        from_mapping({"secret_keys": [bad]})
    assert bad not in str(info.value)


def test_from_mapping_rejects_a_non_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a table"):
        from_mapping(["profile", "lan"], source="x.toml")  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["seeds", "rejoin_interval"])
def test_seed_lists_are_not_engine_configuration(key: str) -> None:
    # Seed strings, DNS and retry/rejoin scheduling belong to the runtime and the agent
    # (memberlist resolves in memberlist.go; serf's retry_join lives in its agent).
    with pytest.raises(ConfigError, match=key):
        from_mapping({key: ["10.0.0.1:7946"]})
