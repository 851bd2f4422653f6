"""Binding a node's UDP and TCP sockets on one port, and choosing the address to advertise.

memberlist binds TCP first and then UDP on the same port (``newNetTransport``); with port
0 it retries a few times when the port the OS chose for TCP is taken for UDP. The
advertised address is separate from the bound one: with a wildcard bind and no
``advertise_addr`` it is the host's private address, found the way memberlist finds it
(``sockaddr.GetPrivateIP``), or a clear error telling the user to set one.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket

import trio

from swimpy.core.member import Address
from swimpy.profiles import Config, ConfigError

#: memberlist's udpRecvBufSize: ask the kernel for 2 MiB of UDP receive buffer
UDP_RECV_BUFFER = 2 * 1024 * 1024
#: how often to retry binding UDP when the port the OS picked for TCP is taken
_BIND_ATTEMPTS = 10


class Sockets:
    """The bound UDP socket (a plain non-blocking socket the owner loop reads directly)
    and the TCP listener (a trio socket)."""

    def __init__(self, udp: socket.socket, tcp: trio.socket.SocketType, port: int) -> None:
        self.udp = udp
        self.tcp = tcp
        self.port = port
        self.family = udp.family

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


def _family(host: str) -> socket.AddressFamily:
    ip = ipaddress.ip_address(host)
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


async def bind(config: Config) -> Sockets:
    """Bind TCP then UDP on ``config.bind_addr``/``bind_port``; raises ``OSError`` with a
    message naming the address when the port is in use or the address is not local."""
    host = config.bind_addr
    family = _family(host)
    attempts = _BIND_ATTEMPTS if config.bind_port == 0 else 1
    last: OSError | None = None
    for _ in range(attempts):
        tcp = trio.socket.socket(family, socket.SOCK_STREAM)
        try:
            _dual_stack(tcp, host)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await tcp.bind((host, config.bind_port))
            port = tcp.getsockname()[1]
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                _dual_stack(udp, host)
                udp.bind((host, port))
            except OSError:
                udp.close()
                raise
        except OSError as exc:
            tcp.close()
            last = exc
            if exc.errno == errno.EADDRINUSE and config.bind_port == 0:
                continue
            raise OSError(exc.errno, f"cannot bind {_show(host, config.bind_port)}: "
                                     f"{exc.strerror or exc}") from exc
        tcp.listen(128)
        udp.setblocking(False)
        # a kernel may refuse or cap it; memberlist only logs that too
        with contextlib.suppress(OSError):
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECV_BUFFER)
        return Sockets(udp, tcp, port)
    assert last is not None
    raise OSError(last.errno, f"cannot bind {_show(host, 0)} after {attempts} attempts: {last}")


def _dual_stack(sock: socket.socket | trio.socket.SocketType, host: str) -> None:
    # "::" takes IPv4 peers too (as Go's net.Listen("udp", "[::]:p") does); a specific
    # IPv6 address stays IPv6 only
    if sock.family == socket.AF_INET6 and host == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)


def _show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def advertise_address(config: Config, bound_port: int) -> Address:
    """The (ip, port) peers reach us at: ``advertise_addr``/``advertise_port`` when set,
    else the bind address, else (wildcard bind) the host's private address."""
    port = config.advertise_port or bound_port
    if config.advertise_addr:
        return (str(ipaddress.ip_address(config.advertise_addr)), port)
    bind_ip = ipaddress.ip_address(config.bind_addr)
    if not bind_ip.is_unspecified:
        return (str(bind_ip), port)
    ip = private_ip(bind_ip.version)
    if ip is None:
        raise ConfigError(
            "advertise_addr",
            f"bind_addr is {config.bind_addr} and this host has no private IPv{bind_ip.version} "
            "address to advertise; set advertise_addr to the address peers reach this node at",
        )
    return (ip, port)


#: a destination outside every local network (TEST-NET-2 / the IPv6 documentation
#: prefix), used only to ask the kernel which address the default route sends from;
#: connect() on a UDP socket sends nothing
_DEFAULT_ROUTE_PROBE = {4: "198.51.100.1", 6: "2001:db8::1"}


def private_ip(version: int) -> str | None:
    """The host's private address of that IP version, as memberlist picks one
    (go-sockaddr's ``GetPrivateIP``: the address of the interface with the default
    route, if it is private under RFC 6890: RFC 1918, shared space, unique local...)."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((_DEFAULT_ROUTE_PROBE[version], 9))
        except OSError:  # no default route
            return None
        ip = ipaddress.ip_address(s.getsockname()[0])
    return str(ip) if _is_private(ip) else None


_SHARED = ipaddress.ip_network("100.64.0.0/10")


def _is_private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return True
    return ip.is_private


def to_peer(family: socket.AddressFamily, addr: tuple[object, ...]) -> Address:
    """A socket address as the engine sees peers: (ip text, port), IPv4-mapped IPv6
    addresses of a dual-stack socket turned back into IPv4."""
    host = str(addr[0])
    port = int(addr[1])  # type: ignore[call-overload]
    if family == socket.AF_INET6 and host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return (host, port)


def to_socket(family: socket.AddressFamily, dest: Address) -> tuple[str, int] | None:
    """An engine address in the form the socket takes; None if the socket's family
    cannot reach it (an IPv6 peer from an IPv4 socket)."""
    host = dest[0]
    if family == socket.AF_INET6:
        if ":" not in host:
            return ("::ffff:" + host, dest[1])
        return (host, dest[1])
    if ":" in host:
        return None
    return (host, dest[1])
