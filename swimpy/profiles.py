"""Node configuration and the LAN / WAN / local profiles.

:class:`Config` holds every setting a swimpy node uses. Its defaults are memberlist's
``DefaultLANConfig()`` (memberlist v0.2.2 ``config.go``) plus Serf's retention settings
(serf v0.9.4 ``serf/config.go``), with Serf's delegate protocol range so a swimpy node is
accepted by Serf agents and Consul pools. See ``shared/spec/CONFIG.md`` for the sources.

The profile functions :func:`lan`, :func:`wan` and :func:`local` mirror memberlist's
``DefaultLANConfig``, ``DefaultWANConfig`` and ``DefaultLocalConfig``; :func:`lan` and
:func:`wan` bind to Consul's Serf ports (8301 / 8302). :func:`from_mapping` builds a config
from a parsed TOML table, with human-friendly durations (``"200ms"``, ``"24h"``).

Times are float seconds throughout. Every value is checked when a :class:`Config` is built;
a bad one raises :class:`ConfigError` naming the field, the value and what is expected.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = [
    "PROFILES",
    "Config",
    "ConfigError",
    "by_name",
    "from_mapping",
    "lan",
    "lan_and_wan",
    "local",
    "parse_duration",
    "wan",
]

# --- limits (duplicated here so that profiles imports nothing from swimpy) -----------------

#: memberlist.go ProtocolVersionMin / ProtocolVersionMax.
PROTOCOL_VERSION_MIN = 1
PROTOCOL_VERSION_MAX = 5
#: net.go MetaMaxSize: memberlist's (fixed) limit on node metadata; our default.
META_MAX_SIZE_DEFAULT = 512
#: The alive message carries Meta as a msgpack str/bin; we allow configuring up to 64 KiB - 1.
META_MAX_SIZE_LIMIT = 65535
#: label.go LabelMaxSize (upstream memberlist >= v0.3.0).
LABEL_MAX_SIZE = 255
#: keyring.go ValidateKey: AES-128, AES-192 or AES-256.
SECRET_KEY_SIZES = (16, 24, 32)
#: Smallest UDP budget we accept (a ping plus framing) and the largest IPv4 UDP payload.
UDP_BUFFER_SIZE_MIN = 64
UDP_BUFFER_SIZE_MAX = 65507
#: Delegate protocol versions are single bytes in the Vsn array (memberlist alive.Vsn []uint8).
BYTE_MAX = 255

#: consul agent/config/default.go ``ports.serf_lan`` / ``ports.serf_wan``.
CONSUL_SERF_LAN_PORT = 8301
CONSUL_SERF_WAN_PORT = 8302
#: memberlist DefaultLANConfig BindPort (also serf agent's default bind port).
MEMBERLIST_DEFAULT_PORT = 7946


class ConfigError(ValueError):
    """A configuration value is wrong.

    ``field`` is the offending field (or mapping key); ``source`` names where the value came
    from (a file name, ``"<config>"``) when it was read by :func:`from_mapping`. The message
    says which value was wrong and what is expected.
    """

    def __init__(self, field: str, message: str, *, source: str | None = None) -> None:
        self.field = field
        self.source = source
        self.detail = message
        super().__init__(message if source is None else f"{source}: {message}")

    def with_source(self, source: str) -> ConfigError:
        """The same error, attributed to ``source``."""
        return ConfigError(self.field, self.detail, source=source)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_config_error, (self.field, self.detail, self.source))


def _rebuild_config_error(field: str, message: str, source: str | None) -> ConfigError:
    return ConfigError(field, message, source=source)


def _invalid(field: str, value: object, expected: str) -> ConfigError:
    return ConfigError(field, f"{field}={value!r} is invalid: expected {expected}")


# --- value checks ----------------------------------------------------------------------------


def _check_str(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise _invalid(field, value, "a string")
    return value


def _check_bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _invalid(field, value, "true or false (a bool, not a number or string)")
    return value


def _check_int(field: str, value: object, lo: int, hi: int | None, what: str = "") -> int:
    rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
    expected = f"an int {rng}" + (f" ({what})" if what else "")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, value, expected)
    if value < lo or (hi is not None and value > hi):
        raise _invalid(field, value, expected)
    return int(value)


def _check_seconds(field: str, value: object, *, zero_ok: bool, what: str = "") -> float:
    bound = ">= 0" if zero_ok else "> 0"
    expected = f"a number of seconds {bound}" + (f" ({what})" if what else "")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(field, value, expected)
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero_ok):
        raise _invalid(field, value, expected)
    return seconds


def _check_ip(field: str, value: object, *, empty_ok: bool) -> str:
    expected = "an IPv4 or IPv6 address literal such as '0.0.0.0', '10.0.0.5' or '::'"
    if empty_ok:
        expected += ", or '' to pick one automatically"
    if not isinstance(value, str):
        raise _invalid(field, value, expected)
    if value == "" and empty_ok:
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise _invalid(field, value, expected) from None
    return value


def _check_str_tuple(field: str, value: object, expected: str) -> tuple[str, ...]:
    if not isinstance(value, tuple):
        raise _invalid(field, value, f"a tuple of {expected}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(
                field, f"{field} contains {item!r}, which is invalid: expected {expected}"
            )
    return value


def _check_secret_keys(value: object) -> tuple[bytes, ...]:
    field = "secret_keys"
    expected = "a tuple of 16-, 24- or 32-byte AES keys as bytes, the primary key first"
    if not isinstance(value, tuple):
        # Never echo key material: describe the value's type only.
        raise ConfigError(
            field, f"{field} is invalid ({type(value).__name__}): expected {expected}"
        )
    seen: dict[bytes, int] = {}
    for i, key in enumerate(value):
        if not isinstance(key, bytes):
            raise ConfigError(
                field,
                f"{field}[{i}] is invalid ({type(key).__name__}): expected bytes "
                "(use base64.b64decode on a key from 'serf keygen' or 'consul keygen')",
            )
        if len(key) not in SECRET_KEY_SIZES:
            raise ConfigError(
                field,
                f"{field}[{i}] is {len(key)} bytes long, which is invalid: expected 16, 24 or "
                "32 bytes (AES-128/192/256)",
            )
        if key in seen:
            raise ConfigError(
                field,
                f"{field}[{i}] is the same key as {field}[{seen[key]}]: list each key once",
            )
        seen[key] = i
    return value


def _check_label(value: object) -> str:
    label = _check_str("label", value)
    size = len(label.encode("utf-8"))
    if size > LABEL_MAX_SIZE:
        raise ConfigError(
            "label",
            f"label={label!r} is invalid: it is {size} bytes in UTF-8, expected at most "
            f"{LABEL_MAX_SIZE}",
        )
    return label


def _check_cidrs(value: object) -> tuple[str, ...]:
    field = "cidrs_allowed"
    cidrs = _check_str_tuple(field, value, "CIDR strings such as '10.0.0.0/8' or 'fd00::/8'")
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError as exc:
            raise ConfigError(
                field,
                f"{field} contains {cidr!r}, which is not a network ({exc}): expected CIDR "
                "strings such as '10.0.0.0/8', '192.168.1.0/24' or 'fd00::/8'",
            ) from None
    return cidrs


# --- the configuration -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Every setting of one swimpy node (one member of one pool).

    Build one with :func:`lan`, :func:`wan`, :func:`local`, :func:`by_name` or
    :func:`from_mapping` rather than directly; change one with :meth:`replace`. Instances are
    immutable and validated: an invalid value raises :class:`ConfigError`.
    """

    # identity and addresses
    #: Node name, unique in the cluster. "" means the runtime fills in the host name
    #: (memberlist Name = os.Hostname()).
    name: str = ""
    #: memberlist BindAddr.
    bind_addr: str = "0.0.0.0"
    #: memberlist BindPort; 0 picks a free port.
    bind_port: int = MEMBERLIST_DEFAULT_PORT
    #: memberlist AdvertiseAddr; "" = the bind address, or a private address if bound to any.
    advertise_addr: str = ""
    #: memberlist AdvertisePort; None = the bound port.
    advertise_port: int | None = None

    # protocol versions (the 6-byte Vsn of alive messages)
    #: memberlist ProtocolVersion (PCur), default ProtocolVersion2Compatible.
    protocol_version: int = 2
    #: Serf's DelegateProtocolMin / Max (serf.ProtocolVersionMin / Max) and Consul's current
    #: serf protocol 4 (consul server_serf.go), so swimpy is accepted by Serf and Consul.
    delegate_protocol_min: int = 2
    delegate_protocol_max: int = 5
    delegate_protocol_version: int = 4

    # failure detection (memberlist DefaultLANConfig)
    #: memberlist TCPTimeout: deadline for every TCP stream.
    tcp_timeout: float = 10.0
    #: memberlist IndirectChecks: helpers asked for an indirect probe.
    indirect_checks: int = 3
    #: memberlist RetransmitMult: broadcasts are sent mult * ceil(log10(n+1)) times.
    retransmit_mult: int = 4
    #: memberlist SuspicionMult: min suspicion = mult * max(1, log10(n)) * probe_interval.
    suspicion_mult: int = 4
    #: memberlist SuspicionMaxTimeoutMult: max suspicion = this * min suspicion.
    suspicion_max_timeout_mult: int = 6
    #: memberlist PushPullInterval (scaled with cluster size); 0 disables push/pull.
    push_pull_interval: float = 30.0
    #: memberlist ProbeInterval.
    probe_interval: float = 1.0
    #: memberlist ProbeTimeout: wait for a direct ack before indirect probes.
    probe_timeout: float = 0.5
    #: memberlist DisableTcpPings.
    disable_tcp_pings: bool = False
    #: memberlist AwarenessMaxMultiplier: health score range 0..this-1.
    awareness_max_multiplier: int = 8

    # dissemination
    #: memberlist GossipInterval; 0 disables gossip (piggybacking still happens).
    gossip_interval: float = 0.2
    #: memberlist GossipNodes: fan-out per gossip tick.
    gossip_nodes: int = 3
    #: memberlist GossipToTheDeadTime.
    gossip_to_the_dead_time: float = 30.0

    # security and framing
    #: memberlist GossipVerifyIncoming / GossipVerifyOutgoing.
    gossip_verify_incoming: bool = True
    gossip_verify_outgoing: bool = True
    #: memberlist EnableCompression (LZW).
    enable_compression: bool = True
    #: memberlist SecretKey + Keyring: the first key is the primary (encrypts), all decrypt.
    #: Left out of ``repr()`` so that logging a config never prints key material.
    secret_keys: tuple[bytes, ...] = dataclasses.field(default=(), repr=False)
    #: memberlist Label (upstream >= v0.3.0): packet/stream label, at most 255 UTF-8 bytes.
    label: str = ""
    #: memberlist SkipInboundLabelCheck (upstream >= v0.3.0).
    skip_inbound_label_check: bool = False

    # limits
    #: memberlist HandoffQueueDepth.
    handoff_queue_depth: int = 1024
    #: memberlist UDPBufferSize: largest UDP packet we compose.
    udp_buffer_size: int = 1400
    #: memberlist DeadNodeReclaimTime; 0 = a dead node's name is never taken by a new address.
    dead_node_reclaim_time: float = 0.0
    #: memberlist CIDRsAllowed; empty = all addresses allowed.
    cidrs_allowed: tuple[str, ...] = ()
    #: Largest node metadata we send or accept (memberlist MetaMaxSize = 512).
    meta_max_size: int = META_MAX_SIZE_DEFAULT

    # Serf-style retention (serf DefaultConfig)
    #: serf ReconnectInterval: how often to try reaching a failed member.
    reconnect_interval: float = 30.0
    #: serf ReconnectTimeout: how long a failed member is kept (and reconnects tried).
    reconnect_timeout: float = 86400.0
    #: serf TombstoneTimeout: how long a member that left is remembered.
    tombstone_timeout: float = 86400.0
    #: serf ReapInterval: how often failed / left members are reaped.
    reap_interval: float = 15.0

    #: Name of the profile this configuration started from (informational).
    profile: str = "lan"

    def __post_init__(self) -> None:
        _validate(self)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied and validated.

        An unknown field name raises :class:`ConfigError` naming it.
        """
        _check_known(changes)
        return dataclasses.replace(self, **changes)

    @property
    def effective_advertise_port(self) -> int:
        """The port other members are told to use: ``advertise_port`` or ``bind_port``."""
        return self.bind_port if self.advertise_port is None else self.advertise_port

    @property
    def vsn(self) -> bytes:
        """The 6-byte version vector of our alive messages (memberlist ``alive.Vsn``).

        ``[ProtocolVersionMin, ProtocolVersionMax, ProtocolVersion, DelegateProtocolMin,
        DelegateProtocolMax, DelegateProtocolVersion]``.
        """
        return bytes(
            (
                PROTOCOL_VERSION_MIN,
                PROTOCOL_VERSION_MAX,
                self.protocol_version,
                self.delegate_protocol_min,
                self.delegate_protocol_max,
                self.delegate_protocol_version,
            )
        )

    @property
    def allowed_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``cidrs_allowed`` parsed (host bits cleared); empty means every address."""
        return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in self.cidrs_allowed)


#: Float-seconds fields: name -> (0 allowed?, note for error messages).
_SECONDS_FIELDS: dict[str, tuple[bool, str]] = {
    "tcp_timeout": (False, ""),
    "push_pull_interval": (True, "0 disables push/pull"),
    "probe_interval": (False, ""),
    "probe_timeout": (False, ""),
    "gossip_interval": (True, "0 disables gossip"),
    "gossip_to_the_dead_time": (True, ""),
    "dead_node_reclaim_time": (True, "0 means never"),
    "reconnect_interval": (False, ""),
    "reconnect_timeout": (False, ""),
    "tombstone_timeout": (False, ""),
    "reap_interval": (False, ""),
}

#: Int fields: name -> (lowest, highest or None, note).
_INT_FIELDS: dict[str, tuple[int, int | None, str]] = {
    "bind_port": (0, 65535, "0 picks a free port"),
    "protocol_version": (PROTOCOL_VERSION_MIN, PROTOCOL_VERSION_MAX, "memberlist protocol"),
    "delegate_protocol_min": (0, BYTE_MAX, ""),
    "delegate_protocol_max": (0, BYTE_MAX, ""),
    "delegate_protocol_version": (0, BYTE_MAX, ""),
    "indirect_checks": (0, None, ""),
    "retransmit_mult": (1, None, ""),
    "suspicion_mult": (1, None, ""),
    "suspicion_max_timeout_mult": (1, None, ""),
    "awareness_max_multiplier": (1, None, ""),
    "gossip_nodes": (0, None, ""),
    "handoff_queue_depth": (1, None, ""),
    "udp_buffer_size": (UDP_BUFFER_SIZE_MIN, UDP_BUFFER_SIZE_MAX, "bytes per UDP packet"),
    "meta_max_size": (0, META_MAX_SIZE_LIMIT, "memberlist's fixed limit is 512"),
}

_BOOL_FIELDS = (
    "disable_tcp_pings",
    "gossip_verify_incoming",
    "gossip_verify_outgoing",
    "enable_compression",
    "skip_inbound_label_check",
)

_FIELD_NAMES: frozenset[str] = frozenset(f.name for f in dataclasses.fields(Config))


def _validate(cfg: Config) -> None:
    """Check every field of ``cfg``; normalise int seconds to float."""
    _check_str("name", cfg.name)
    _check_ip("bind_addr", cfg.bind_addr, empty_ok=False)
    _check_ip("advertise_addr", cfg.advertise_addr, empty_ok=True)
    if cfg.advertise_port is not None:
        _check_int("advertise_port", cfg.advertise_port, 1, 65535, "or None for the bound port")
    for name, (lo, hi, what) in _INT_FIELDS.items():
        _check_int(name, getattr(cfg, name), lo, hi, what)
    for name in _BOOL_FIELDS:
        _check_bool(name, getattr(cfg, name))
    for name, (zero_ok, what) in _SECONDS_FIELDS.items():
        seconds = _check_seconds(name, getattr(cfg, name), zero_ok=zero_ok, what=what)
        object.__setattr__(cfg, name, seconds)  # frozen: normalise 1 -> 1.0 once, here

    if cfg.probe_timeout > cfg.probe_interval:
        raise _invalid(
            "probe_timeout",
            cfg.probe_timeout,
            f"at most probe_interval ({cfg.probe_interval!r} s): the direct ack wait is part of "
            "the probe period",
        )
    dmin, dcur, dmax = (
        cfg.delegate_protocol_min,
        cfg.delegate_protocol_version,
        cfg.delegate_protocol_max,
    )
    if dmin > dmax:
        raise _invalid("delegate_protocol_min", dmin, f"at most delegate_protocol_max ({dmax})")
    if not dmin <= dcur <= dmax:
        raise _invalid(
            "delegate_protocol_version",
            dcur,
            f"between delegate_protocol_min ({dmin}) and delegate_protocol_max ({dmax})",
        )

    _check_secret_keys(cfg.secret_keys)
    _check_label(cfg.label)
    _check_cidrs(cfg.cidrs_allowed)
    _check_str("profile", cfg.profile)


def _check_known(names: Mapping[str, Any]) -> None:
    for key in names:
        if key not in _FIELD_NAMES:
            raise _unknown_key(key)


def _unknown_key(key: object) -> ConfigError:
    close = difflib.get_close_matches(str(key), sorted(_FIELD_NAMES), n=1)
    hint = (
        f"; did you mean {close[0]!r}?"
        if close
        else f"; valid keys: {', '.join(sorted(_FIELD_NAMES))}"
    )
    return ConfigError(str(key), f"unknown configuration key {key!r}{hint}")


# --- profiles --------------------------------------------------------------------------------

#: memberlist DefaultWANConfig overrides of DefaultLANConfig.
_WAN_VALUES: dict[str, Any] = {
    "bind_port": CONSUL_SERF_WAN_PORT,
    "tcp_timeout": 30.0,
    "suspicion_mult": 6,
    "push_pull_interval": 60.0,
    "probe_interval": 5.0,
    "probe_timeout": 3.0,
    "gossip_interval": 0.5,
    "gossip_nodes": 4,
    "gossip_to_the_dead_time": 60.0,
}

#: memberlist DefaultLocalConfig overrides of DefaultLANConfig.
_LOCAL_VALUES: dict[str, Any] = {
    "bind_port": MEMBERLIST_DEFAULT_PORT,
    "tcp_timeout": 1.0,
    "indirect_checks": 1,
    "retransmit_mult": 2,
    "suspicion_mult": 3,
    "push_pull_interval": 15.0,
    "probe_timeout": 0.2,
    "gossip_interval": 0.1,
    "gossip_to_the_dead_time": 15.0,
}

#: memberlist DefaultLANConfig, on Consul's LAN Serf port.
_LAN_VALUES: dict[str, Any] = {"bind_port": CONSUL_SERF_LAN_PORT}


def _build(profile: str, base: Mapping[str, Any], overrides: Mapping[str, Any]) -> Config:
    _check_known(overrides)
    values: dict[str, Any] = {"profile": profile, **base, **overrides}
    return Config(**values)


def lan(**overrides: Any) -> Config:
    """memberlist ``DefaultLANConfig()`` on port 8301 (Consul's LAN Serf port).

    Also what ``serf agent`` and Consul's LAN pool use. Any field can be overridden by
    keyword; an unknown keyword raises :class:`ConfigError`.
    """
    return _build("lan", _LAN_VALUES, overrides)


def wan(**overrides: Any) -> Config:
    """memberlist ``DefaultWANConfig()`` on port 8302 (Consul's WAN Serf port).

    Slower, more tolerant timing: probe every 5 s with a 3 s ack timeout, suspicion
    multiplier 6, push/pull every 60 s, gossip every 500 ms to 4 nodes.

    Consul's WAN pool takes ``gossip_nodes`` (and ``retransmit_mult``) from its LAN defaults,
    so it gossips to 3 nodes; pass ``gossip_nodes=3`` to match a Consul WAN pool exactly.
    """
    return _build("wan", _WAN_VALUES, overrides)


def local(**overrides: Any) -> Config:
    """memberlist ``DefaultLocalConfig()`` on port 7946: fast timing for one host or a LAN
    with very low latency (tests, development)."""
    return _build("local", _LOCAL_VALUES, overrides)


def lan_and_wan(node_name: str, datacenter: str, *, lan_overrides: Mapping[str, Any] | None = None,
                wan_overrides: Mapping[str, Any] | None = None) -> tuple[Config, Config]:
    """The two pools of a Consul server: a LAN pool (port 8301) named ``node_name`` and a
    WAN pool (port 8302) named ``node_name.datacenter``, as Consul names WAN members.

    Open both with :func:`swimpy.open_node` in one process; ``*_overrides`` change any
    field of either (for instance the bind addresses)."""
    for fld, value in (("name", node_name), ("datacenter", datacenter)):
        if not isinstance(value, str) or not value:
            raise _invalid(fld, value, "a non-empty string")
    if "." in datacenter:
        raise _invalid("datacenter", datacenter, "a name without dots (WAN names are node.dc)")
    lan_cfg = lan(**{"name": node_name, **(lan_overrides or {})})
    wan_cfg = wan(**{"name": f"{node_name}.{datacenter}", **(wan_overrides or {})})
    return lan_cfg, wan_cfg


#: Profile name -> factory.
PROFILES: Mapping[str, Callable[..., Config]] = {"lan": lan, "wan": wan, "local": local}


def by_name(name: str, **overrides: Any) -> Config:
    """The profile called ``name`` ("lan", "wan" or "local") with ``overrides`` applied."""
    factory = PROFILES.get(name) if isinstance(name, str) else None
    if factory is None:
        raise _invalid("profile", name, "one of 'lan', 'wan', 'local'")
    return factory(**overrides)


# --- mappings (TOML tables) and durations ----------------------------------------------------

#: Go time.ParseDuration units, in seconds.
_DURATION_UNITS: dict[str, Fraction] = {
    "ns": Fraction(1, 1_000_000_000),
    "us": Fraction(1, 1_000_000),
    "\u00b5s": Fraction(1, 1_000_000),  # MICRO SIGN, as Go accepts
    "\u03bcs": Fraction(1, 1_000_000),  # GREEK SMALL LETTER MU, as Go accepts
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
}
_DURATION_PART = re.compile("(\\d+(?:\\.\\d*)?|\\.\\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION_EXPECTED = (
    "a number of seconds or a duration string such as '200ms', '1.5s', '2m', '24h' or '1h30m'"
)


def parse_duration(value: str | float | int, field: str) -> float:
    """Seconds from a number of seconds or a Go-style duration string.

    Strings are one or more ``<number><unit>`` parts (units ``ns``, ``us``, ``ms``, ``s``,
    ``m``, ``h``), optionally signed, e.g. ``"200ms"``, ``"1.5s"``, ``"1h30m"``; ``"0"`` is
    zero. A bare number in a string is rejected, since its unit is ambiguous. Errors are
    :class:`ConfigError` naming ``field``. Range checks are :class:`Config`'s job.
    """
    if isinstance(value, bool):
        raise _invalid(field, value, _DURATION_EXPECTED)
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise _invalid(field, value, _DURATION_EXPECTED)
        return seconds
    if not isinstance(value, str):
        raise _invalid(field, value, _DURATION_EXPECTED)
    text = value.strip()
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise _invalid(field, value, _DURATION_EXPECTED)
    total = Fraction(0)
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            hint = _DURATION_EXPECTED
            if re.fullmatch(r"\d+(\.\d*)?|\.\d+", text):
                hint += f" (add a unit, e.g. '{text}s')"
            raise _invalid(field, value, hint)
        total += Fraction(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return float(sign * total)


#: Tuple-of-strings fields that a TOML file gives as arrays.
_STR_TUPLE_FIELDS = ("cidrs_allowed",)


def _decode_secret_keys(value: object) -> tuple[bytes, ...]:
    field = "secret_keys"
    expected = (
        "a base64 key string or a list of them, primary first (as printed by "
        "'serf keygen' / 'consul keygen')"
    )
    items: list[object]
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ConfigError(
            field, f"{field} is invalid ({type(value).__name__}): expected {expected}"
        )
    keys: list[bytes] = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ConfigError(
                field, f"{field}[{i}] is invalid ({type(item).__name__}): expected {expected}"
            )
        try:
            keys.append(base64.b64decode(item.strip(), validate=True))
        except (binascii.Error, ValueError):
            # Never echo the (possibly secret) text.
            raise ConfigError(
                field, f"{field}[{i}] is not valid base64: expected {expected}"
            ) from None
    return tuple(keys)


def _convert(key: str, value: Any) -> Any:
    if key in _SECONDS_FIELDS:
        return parse_duration(value, key)
    if key == "secret_keys":
        return _decode_secret_keys(value)
    if key in _STR_TUPLE_FIELDS and isinstance(value, list | tuple):
        return tuple(value)
    return value


def from_mapping(data: Mapping[str, Any], *, source: str = "<config>") -> Config:
    """Build a config from a mapping such as a parsed TOML table.

    Keys are :class:`Config` field names. ``profile`` ("lan", the default, "wan" or "local")
    chooses the base values; the other keys override them. Durations may be numbers of
    seconds or strings such as ``"200ms"``, ``"1.5s"``, ``"2m"``, ``"24h"``;
    ``secret_keys`` are base64 strings (one, or a list with the primary first); arrays become
    tuples. Every error is a :class:`ConfigError` naming the key and ``source``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            "<root>",
            f"the configuration is a {type(data).__name__}: expected a table of keys",
            source=source,
        )
    profile = data.get("profile", "lan")
    if not isinstance(profile, str) or profile not in PROFILES:
        raise _invalid("profile", profile, "one of 'lan', 'wan', 'local'").with_source(source)
    overrides: dict[str, Any] = {}
    try:
        for key, value in data.items():
            if not isinstance(key, str) or key not in _FIELD_NAMES:
                raise _unknown_key(key)
            if key == "profile":
                continue
            overrides[key] = _convert(key, value)
        return PROFILES[profile](**overrides)
    except ConfigError as exc:
        raise exc.with_source(source) from None
