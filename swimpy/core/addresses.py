"""IP address helpers: raw wire bytes to text, and the ``cidrs_allowed`` filter."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

#: Raw IP bytes -> text, shared by every engine of the process (a pure function's memo,
#: bounded, so thousands of simulated engines don't each keep a copy).
_IP_CACHE_MAX = 65536
_IP_CACHE: dict[bytes, str] = {}


def ip_text(raw: bytes) -> str | None:
    """The address text of 4 or 16 raw bytes (IPv4-mapped IPv6 as IPv4), or None."""
    s = _IP_CACHE.get(raw)
    if s is not None:
        return s
    try:
        if len(raw) == 4:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(raw)
        elif len(raw) == 16:
            ip6 = ipaddress.IPv6Address(raw)
            ip = ip6.ipv4_mapped or ip6
        else:
            return None
    except ValueError:
        return None
    s = str(ip)
    if len(_IP_CACHE) >= _IP_CACHE_MAX:
        _IP_CACHE.clear()
    _IP_CACHE[raw] = s
    return s


class AddressFilter:
    """memberlist ``CIDRsAllowed``: with no networks configured, everything is allowed."""

    __slots__ = ("_nets",)

    def __init__(self, cidrs: Sequence[str]) -> None:
        self._nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def allows(self, host: str) -> bool:
        if not self._nets:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._nets)
