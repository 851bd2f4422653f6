"""The agent's settings: a TOML file with Serf's key names, overridden by command-line flags.

::

    node_name = "web-1"
    profile = "lan"
    bind = "0.0.0.0:8301"
    advertise = "10.0.0.7:8301"
    start_join = ["10.0.0.5:8301"]
    retry_join = ["10.0.0.6:8301"]
    retry_interval = "30s"
    retry_max = 0
    encrypt_key = "base64..."
    keyring_file = "/var/lib/swimpy/keyring.json"
    tags = { role = "web" }
    rpc_addr = "127.0.0.1:8400"
    log_level = "info"
    event_handlers = ["member-join=/usr/local/bin/on-join"]
    snapshot_path = "/var/lib/swimpy/snapshot.json"

    [config]            # any profile field by its name
    probe_interval = "2s"

A syntax error names the file and line; a bad value names the file and the dotted key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import socket
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from swimpy import profiles
from swimpy.profiles import Config, ConfigError

#: the control API's default address: loopback, and not serf's 7373
DEFAULT_RPC_ADDR = "127.0.0.1:8400"
LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error")
EVENT_FILTERS = ("member-join", "member-leave", "member-failed", "member-update",
                 "member-reap")


class SettingsError(ValueError):
    """A bad setting: ``where`` is the file (and line) or flag, ``key`` the dotted key."""

    def __init__(self, where: str, key: str, message: str) -> None:
        self.where = where
        self.key = key
        text = f"{where}: {key}: {message}" if key else f"{where}: {message}"
        super().__init__(text)


@dataclass(frozen=True)
class EventHandler:
    """``[filter,filter=]script``: run ``script`` for the events named (all when empty)."""

    events: tuple[str, ...]
    script: str

    @classmethod
    def parse(cls, text: str, where: str, key: str) -> EventHandler:
        spec, sep, script = text.partition("=")
        if not sep:
            return cls((), text)
        events = tuple(e.strip() for e in spec.split(",") if e.strip())
        for e in events:
            if e not in EVENT_FILTERS:
                raise SettingsError(where, key, f"unknown event {e!r} in {text!r}; events are "
                                    f"{', '.join(EVENT_FILTERS)}")
        if not script.strip():
            raise SettingsError(where, key, f"no script in {text!r}")
        return cls(events, script.strip())

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


@dataclass(frozen=True)
class AgentSettings:
    node_name: str = ""
    profile: str = "lan"
    bind: str = ""
    advertise: str = ""
    start_join: tuple[str, ...] = ()
    retry_join: tuple[str, ...] = ()
    retry_interval: float = 30.0
    retry_max: int = 0
    encrypt_key: bytes | None = field(default=None, repr=False)
    keyring_file: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    rpc_addr: str = DEFAULT_RPC_ADDR
    log_level: str = "info"
    log_json: bool = False
    event_handlers: tuple[EventHandler, ...] = ()
    snapshot_path: str = ""
    #: a datacenter name runs a WAN pool too (Consul server style)
    dc: str = ""
    wan_bind: str = ""
    wan_advertise: str = ""
    wan_join: tuple[str, ...] = ()
    #: profile fields by name for the LAN pool (the file's [config] table)
    config: Mapping[str, Any] = field(default_factory=dict)
    #: profile fields for the WAN pool (the file's [wan_config] table)
    wan_config_table: Mapping[str, Any] = field(default_factory=dict)
    #: where the settings came from, for error messages
    source: str = "flags"

    def name(self) -> str:
        return self.node_name or socket.gethostname()

    def lan_config(self) -> Config:
        return self._pool_config(self.profile, self.name(), self.bind, self.advertise,
                                 self.config, "")

    def wan_config(self) -> Config | None:
        if not self.dc:
            return None
        return self._pool_config("wan", f"{self.name()}.{self.dc}", self.wan_bind,
                                 self.wan_advertise, self.wan_config_table, "wan_")

    def _pool_config(self, profile: str, name: str, bind: str, advertise: str,
                     table: Mapping[str, Any], prefix: str) -> Config:
        """One pool's config; ``prefix`` is "" (LAN) or "wan_" (its keys' names)."""
        values: dict[str, Any] = {**dict(table), "profile": profile, "name": name}
        if bind:
            host, port = split_host_port(bind, f"{prefix}bind", self.source)
            _check_ip(host, f"{prefix}bind", self.source)
            values["bind_addr"] = host
            if port is not None:
                values["bind_port"] = port
        if advertise:
            host, port = split_host_port(advertise, f"{prefix}advertise", self.source)
            _check_ip(host, f"{prefix}advertise", self.source)
            values["advertise_addr"] = host
            if port is not None:
                values["advertise_port"] = port
        if self.encrypt_key is not None:
            values["secret_keys"] = base64.b64encode(self.encrypt_key).decode()
        try:
            return profiles.from_mapping(values, source=self.source)
        except ConfigError as exc:
            section = f"{prefix}config"
            raise SettingsError(self.source, f"{section}.{exc.field}", exc.detail) from None


def split_host_port(text: str, key: str, where: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port`` or a host alone."""
    t = text.strip()
    host, port = t, ""
    if t.startswith("["):
        end = t.find("]")
        if end < 0:
            raise SettingsError(where, key, f"{text!r}: missing ']'")
        host, rest = t[1:end], t[end + 1:]
        port = rest[1:] if rest.startswith(":") else ""
    elif t.count(":") == 1:
        host, port = t.split(":")
    if not host:
        raise SettingsError(where, key, f"{text!r} has no host")
    if port and (not port.isdigit() or int(port) > 65535):
        raise SettingsError(where, key, f"{text!r}: {port!r} is not a port")
    if port and int(port) == 0 and key == "rpc_addr":
        raise SettingsError(where, key, f"{text!r}: the control API needs a fixed port")
    return host, int(port) if port else None


def _check_ip(host: str, key: str, where: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise SettingsError(where, key, f"{host!r} is not an IP address (memberlist binds and "
                            "advertises IP addresses, not names)") from None


def decode_key(text: str, where: str, key: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(where, key, "the key is not valid base64") from None
    if len(raw) not in (16, 24, 32):
        raise SettingsError(where, key, f"the key is {len(raw)} bytes; it must be 16, 24 or "
                            "32 bytes (swimpy keygen or serf keygen makes one)")
    return raw


# ---------------------------------------------------------------------------- the file

#: profile fields the agent sets from its own keys, so [config] may not
_TOP_LEVEL_FIELDS = {"name": "node_name", "profile": "profile", "bind_addr": "bind",
                     "bind_port": "bind", "advertise_addr": "advertise",
                     "advertise_port": "advertise", "secret_keys": "encrypt_key"}

_STR_KEYS = ("node_name", "profile", "bind", "advertise", "keyring_file", "rpc_addr",
             "log_level", "snapshot_path", "dc", "wan_bind", "wan_advertise")
_LIST_KEYS = ("start_join", "retry_join", "wan_join", "event_handlers")


def load_file(path: str) -> AgentSettings:
    """Read a TOML settings file; every error names the file (and line, or dotted key)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(path, "", "no such file") from None
    except OSError as exc:
        raise SettingsError(path, "", exc.strerror or str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends "(at line L, column C)", or "(at end of document)"
        text = str(exc)
        if "line" not in text:
            with open(path, "rb") as f:
                lines = f.read().count(b"\n") + 1
            text = f"{text.removesuffix(' (at end of document)')} (at line {lines}, the end)"
        raise SettingsError(path, "", f"TOML syntax error: {text}") from None
    return from_mapping(data, path)


def from_mapping(data: Mapping[str, Any], where: str) -> AgentSettings:
    values: dict[str, Any] = {"source": where}
    for key, value in data.items():
        if key in _STR_KEYS:
            values[key] = _str(value, where, key)
        elif key in _LIST_KEYS:
            items = _str_list(value, where, key)
            if key == "event_handlers":
                values[key] = tuple(EventHandler.parse(v, where, f"{key}[{i}]")
                                    for i, v in enumerate(items))
            else:
                values[key] = tuple(items)
        elif key == "retry_interval":
            values[key] = _seconds(value, where, key)
        elif key == "retry_max":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SettingsError(where, key, f"{value!r} is not a whole number >= 0")
            values[key] = value
        elif key == "encrypt_key":
            values[key] = decode_key(_str(value, where, key), where, key)
        elif key == "log_json":
            if not isinstance(value, bool):
                raise SettingsError(where, key, f"{value!r} is not true or false")
            values[key] = value
        elif key == "tags":
            if not isinstance(value, Mapping):
                raise SettingsError(where, key, "tags is a table of strings")
            values[key] = {str(k): _str(v, where, f"tags.{k}") for k, v in value.items()}
        elif key in ("config", "wan_config"):
            if not isinstance(value, Mapping):
                raise SettingsError(where, key, f"[{key}] is a table of profile fields")
            for k in value:
                if k in _TOP_LEVEL_FIELDS:
                    top = _TOP_LEVEL_FIELDS[k]
                    if key == "wan_config" and top in ("bind", "advertise"):
                        top = f"wan_{top}"
                    raise SettingsError(where, f"{key}.{k}", "set this with the top-level "
                                        f"key {top!r}, not in [{key}]")
            values["config" if key == "config" else "wan_config_table"] = dict(value)
        else:
            raise SettingsError(where, key, "unknown key; known keys: " + ", ".join(
                sorted((*_STR_KEYS, *_LIST_KEYS, "retry_interval", "retry_max", "encrypt_key",
                        "log_json", "tags", "config", "wan_config"))))
    settings = AgentSettings(**values)
    validate(settings)
    return settings


def merge(base: AgentSettings, flags: Mapping[str, Any]) -> AgentSettings:
    """``base`` (from the file) with the flags that were given (not None / not empty)."""
    changes = {k: v for k, v in flags.items()
               if v is not None and not (isinstance(v, tuple | dict) and not v)}
    if "tags" in changes:
        changes["tags"] = {**base.tags, **changes["tags"]}
    merged = dataclasses.replace(base, **changes)
    validate(merged)
    return merged


def validate(s: AgentSettings) -> None:
    where = s.source
    if s.profile not in profiles.PROFILES:
        raise SettingsError(where, "profile", f"{s.profile!r} is not one of lan, wan, local")
    if s.log_level.lower() not in LOG_LEVELS:
        raise SettingsError(where, "log_level", f"{s.log_level!r} is not one of "
                            + ", ".join(LOG_LEVELS))
    split_host_port(s.rpc_addr, "rpc_addr", where)
    if s.dc and "." in s.dc:
        raise SettingsError(where, "dc", f"{s.dc!r}: a datacenter name has no dots")
    if (s.wan_bind or s.wan_join or s.wan_advertise or s.wan_config_table) and not s.dc:
        raise SettingsError(where, "dc", "the WAN settings (wan_bind, wan_advertise, wan_join, "
                            "[wan_config]) need a datacenter (dc)")
    # building the pool configs checks every profile field and address
    s.lan_config()
    s.wan_config()


def _str(value: object, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(where, key, f"{value!r} is not a string")
    return value


def _str_list(value: object, where: str, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise SettingsError(where, key, f"{value!r} is not a list of strings")
    return [_str(v, where, f"{key}[{i}]") for i, v in enumerate(value)]


def _seconds(value: object, where: str, key: str) -> float:
    try:
        seconds = profiles.parse_duration(value, key or where)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise SettingsError(where, key, exc.detail) from None
    if seconds <= 0:
        raise SettingsError(where, key, f"{value!r} is not > 0")
    return seconds


def parse_tags(items: Sequence[str], where: str = "--tag") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise SettingsError(where, "", f"{item!r} is not key=value")
        out[k] = v
    return out
