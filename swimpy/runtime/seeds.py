"""Seed addresses for joins: ``"host:port"``, ``"[::1]:port"``, ``"name.example:port"``,
or a host alone (the pool's port), resolved anew at every attempt.

As memberlist's ``resolveAddr``: a name that resolves to several addresses gives one join
target per address (DNS round robin seeds every one of them).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import trio

from swimpy.core.member import Address


@dataclass(frozen=True, slots=True)
class Seed:
    text: str
    host: str
    port: int


def parse_seed(text: str, default_port: int) -> Seed:
    """Split a seed string; ``ValueError`` names the string when it is not an address."""
    s = text.strip()
    if not s:
        raise ValueError("empty join address")
    host, port_text = s, ""
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise ValueError(f"join address {text!r}: missing ']'")
        host, rest = s[1:end], s[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"join address {text!r}: expected ':port' after ']'")
            port_text = rest[1:]
    elif s.count(":") == 1:
        host, port_text = s.split(":")
    elif s.count(":") > 1:
        # a bare IPv6 address (no port); anything else with colons is ambiguous
        try:
            ipaddress.IPv6Address(s)
        except ValueError:
            raise ValueError(f"join address {text!r}: write IPv6 as [addr]:port") from None
    if not host:
        raise ValueError(f"join address {text!r}: no host")
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) <= 0xFFFF:
            raise ValueError(f"join address {text!r}: {port_text!r} is not a port")
        port = int(port_text)
    return Seed(text, host, port)


async def resolve(seed: Seed, family: socket.AddressFamily) -> list[Address]:
    """The seed's addresses that a socket of ``family`` can reach (IPv4 only from an IPv4
    socket; both from a dual-stack one). Raises ``OSError`` when the name does not
    resolve."""
    try:
        ip = ipaddress.ip_address(seed.host)
    except ValueError:
        pass
    else:
        if ip.version == 6 and family == socket.AF_INET:
            raise OSError(f"{seed.text}: an IPv6 address, but this node is bound to IPv4")
        return [(str(ip), seed.port)]
    want = socket.AF_INET if family == socket.AF_INET else socket.AF_UNSPEC
    try:
        infos = await trio.socket.getaddrinfo(seed.host, seed.port, want, socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise OSError(f"{seed.text}: cannot resolve {seed.host!r}: {exc.strerror}") from exc
    out: list[Address] = []
    for _fam, _type, _proto, _canon, sockaddr in infos:
        addr = (str(ipaddress.ip_address(str(sockaddr[0]).split("%")[0])), seed.port)
        if addr not in out:
            out.append(addr)
    if not out:
        raise OSError(f"{seed.text}: {seed.host!r} has no usable address")
    return out
