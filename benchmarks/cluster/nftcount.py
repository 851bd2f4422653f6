"""Per-port packet and byte counters from nftables, the same for all three systems.

Linux keeps no per-socket UDP byte counters, so the benchmark puts its own table,
``inet swimpybench``, in the output path with one counting rule per member port on the
loopback interface (every datagram between members is generated locally, so it passes the
output hook once):

* ``udp sport P``: what member P sent over UDP (memberlist sends every datagram from its
  bound socket);
* ``tcp dport P`` and ``tcp sport P``: both directions of the TCP connections to member P's
  listener (push/pull, TCP fallback pings). Dialers use ephemeral ports, so the sum over
  all members counts every connection once.

Counters include the IP and transport headers; :func:`payload_bytes` takes off 28 bytes
per UDP datagram (20 IPv4 + 8 UDP) to give the bytes memberlist itself sends. TCP is
reported with its headers (and handshake and ACK segments), as segments and bytes.

Needs root and the ``nft`` command (``apt-get install nftables``). :meth:`NftCounters.remove`
deletes the table; call it in a ``finally``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

TABLE = "swimpybench"
FAMILY = "inet"
UDP_HEADERS = 28  # IPv4 (20, no options) + UDP (8)


@dataclass(frozen=True, slots=True)
class Count:
    packets: int
    bytes: int

    def __sub__(self, other: Count) -> Count:
        return Count(self.packets - other.packets, self.bytes - other.bytes)


def rule_name(proto: str, direction: str, port: int) -> str:
    """The comment that names a counting rule, e.g. ``udp-sport-7946``."""
    return f"{proto}-{direction}-{port}"


def ruleset(ports: Iterable[int], table: str = TABLE) -> str:
    """The ``nft -f`` script that (re)creates the table with a counter per port."""
    lines = [f"table {FAMILY} {table} {{",
             "  chain out {",
             "    type filter hook output priority 0; policy accept;"]
    for p in ports:
        for proto, direction in (("udp", "sport"), ("tcp", "dport"), ("tcp", "sport")):
            lines.append(f'    oifname "lo" {proto} {direction} {p} counter '
                         f'comment "{rule_name(proto, direction, p)}"')
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def parse_counters(text: str) -> dict[str, Count]:
    """The counters of ``nft -j list table inet swimpybench``, by rule comment."""
    data: dict[str, Any] = json.loads(text)
    out: dict[str, Count] = {}
    for item in data.get("nftables", []):
        rule = item.get("rule")
        if not rule or "comment" not in rule:
            continue
        for expr in rule.get("expr", []):
            counter = expr.get("counter") if isinstance(expr, dict) else None
            if isinstance(counter, dict):
                out[str(rule["comment"])] = Count(int(counter["packets"]),
                                                  int(counter["bytes"]))
    return out


def payload_bytes(udp: Count) -> int:
    """UDP payload bytes (what memberlist hands to the socket) of a datagram counter."""
    return udp.bytes - UDP_HEADERS * udp.packets


def available() -> str | None:
    """``None`` when counting works here, else why not."""
    if shutil.which("nft") is None:
        return "the nft command is missing (apt-get install nftables)"
    done = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                          check=False, timeout=10)
    if done.returncode != 0:
        return f"nft list tables failed: {done.stderr.strip()} (needs root)"
    return None


class NftCounters:
    """The ``inet swimpybench`` table (or another ``table``, so a test never touches a
    running benchmark's): :meth:`install` for some ports, :meth:`read`, :meth:`remove`
    (idempotent)."""

    def __init__(self, table: str = TABLE) -> None:
        self.table = table
        self.installed = False

    def install(self, ports: Iterable[int]) -> None:
        self.remove()
        subprocess.run(["nft", "-f", "-"], input=ruleset(ports, self.table), text=True, check=True,
                       capture_output=True, timeout=10)
        self.installed = True

    def read(self) -> dict[str, Count]:
        done = subprocess.run(["nft", "-j", "list", "table", FAMILY, self.table],
                              capture_output=True, text=True, check=True, timeout=10)
        return parse_counters(done.stdout)

    def remove(self) -> None:
        done = subprocess.run(["nft", "list", "table", FAMILY, self.table], capture_output=True,
                              text=True, check=False, timeout=10)
        if done.returncode == 0:
            subprocess.run(["nft", "delete", "table", FAMILY, self.table], check=True,
                           capture_output=True, timeout=10)
        self.installed = False


def traffic(before: dict[str, Count], after: dict[str, Count], ports: Iterable[int],
            seconds: float) -> dict[str, Any]:
    """Per member per second over a window, from two :meth:`NftCounters.read`\\ s: UDP
    datagrams and payload bytes sent, TCP segments and bytes (headers included)."""
    ports = list(ports)
    zero = Count(0, 0)
    udp = [after.get(rule_name("udp", "sport", p), zero)
           - before.get(rule_name("udp", "sport", p), zero) for p in ports]
    tcp = [after.get(rule_name("tcp", d, p), zero) - before.get(rule_name("tcp", d, p), zero)
           for p in ports for d in ("dport", "sport")]
    n = len(ports)
    udp_dgrams = sum(c.packets for c in udp)
    udp_payload = sum(payload_bytes(c) for c in udp)
    tcp_segments = sum(c.packets for c in tcp)
    tcp_bytes = sum(c.bytes for c in tcp)
    per = n * seconds
    return {
        "window_s": round(seconds, 2),
        "udp_datagrams_per_member_s": round(udp_dgrams / per, 3),
        "udp_payload_bytes_per_member_s": round(udp_payload / per, 1),
        "tcp_segments_per_member_s": round(tcp_segments / per, 3),
        "tcp_bytes_per_member_s": round(tcp_bytes / per, 1),
        "bytes_per_member_s": round((udp_payload + tcp_bytes) / per, 1),
        "udp_payload_bytes_per_datagram": (round(udp_payload / udp_dgrams, 1)
                                           if udp_dgrams else None),
        "udp_datagrams_sent_per_member": [c.packets for c in udp],
    }
