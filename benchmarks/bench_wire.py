"""Wire codec throughput on one core: messages per second through swimpy.wire.

Usage::

    python benchmarks/bench_wire.py [--seconds S] [--out PATH]

Each benchmark runs a small operation in batches for about ``S`` seconds and reports
the best and the median batch rate (best is the least disturbed by other load on the
machine). Results are written as JSON (default ``benchmarks/results/wire.json``) and
printed as a table. Target from the project brief: decoding at least 100,000 alive
messages per second.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # allow running from a checkout without installing
    sys.path.insert(0, str(_ROOT))

from swimpy.wire import crypto  # noqa: E402
from swimpy.wire.crypto import Keyring  # noqa: E402
from swimpy.wire.messages import Alive, decode_message_untrusted, encode_message  # noqa: E402
from swimpy.wire.packet import (  # noqa: E402
    WireOptions,
    compound_size,
    decode_packet_untrusted,
    encode_packet,
    make_compound,
)

#: memberlist's default UDPBufferSize: the compound budget of one gossip packet.
UDP_BUFFER_SIZE = 1400
#: Target of the issue: alive messages decoded per second on one core.
DECODE_ALIVE_TARGET = 100_000
DEFAULT_OUT = _ROOT / "benchmarks" / "results" / "wire.json"


def serf_meta(tags: dict[str, str]) -> bytes:
    """Serf's tag encoding: 0xff + msgpack map (WIRE.md §11.1), built by hand."""
    out = bytearray(b"\xff")
    out.append(0x80 | len(tags))
    for k, v in sorted(tags.items()):
        for s in (k.encode(), v.encode()):
            out.append(0xA0 | len(s))
            out += s
    return bytes(out)


def typical_alive(i: int = 42) -> Alive:
    """An alive as a Serf agent gossips it: serf tags in Meta, serf delegate versions."""
    return Alive(
        incarnation=3 + i % 5,
        node=f"node-{i:04d}.dc1",
        addr=bytes((10, 0, i // 256 % 256, i % 256)),
        port=7946,
        meta=serf_meta({"role": "web", "dc": "dc1", "rack": f"r{i % 8}"}),
        vsn=bytes((1, 5, 2, 2, 5, 5)),
    )


def full_compound(budget: int) -> tuple[bytes, int]:
    """A compound of distinct alive messages, as many as fit in ``budget`` bytes."""
    parts: list[bytes] = []
    i = 0
    while True:
        candidate = encode_message(typical_alive(i))
        if compound_size([*map(len, parts), len(candidate)]) > budget:
            break
        parts.append(candidate)
        i += 1
    return make_compound(parts), len(parts)


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    what: str
    messages_per_op: int
    ops_per_s_best: float
    ops_per_s_median: float
    op_bytes: int

    @property
    def messages_per_s_best(self) -> float:
        return self.ops_per_s_best * self.messages_per_op

    @property
    def messages_per_s_median(self) -> float:
        return self.ops_per_s_median * self.messages_per_op

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "what": self.what,
            "messages_per_op": self.messages_per_op,
            "bytes_per_op": self.op_bytes,
            "ops_per_s_best": round(self.ops_per_s_best, 1),
            "ops_per_s_median": round(self.ops_per_s_median, 1),
            "messages_per_s_best": round(self.messages_per_s_best),
            "messages_per_s_median": round(self.messages_per_s_median),
        }


def measure(fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(best, median) operations per second over batches of ~0.05 s for ``seconds``."""
    batch = 1
    while True:  # calibrate
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        if time.perf_counter() - start >= 0.05:
            break
        batch *= 2
    rates: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 3:
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        rates.append(batch / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def run(seconds: float) -> list[Result]:
    results: list[Result] = []

    def bench(name: str, what: str, fn: Callable[[], object], n: int, size: int) -> None:
        best, median = measure(fn, seconds)
        results.append(Result(name, what, n, best, median, size))
        print(f"  {name:<28} {best * n:>12,.0f} msg/s", file=sys.stderr)

    alive = typical_alive()
    alive_bytes = encode_message(alive)
    assert decode_message_untrusted(alive_bytes) == alive
    bench(
        "encode_alive",
        "encode_message(Alive) with serf tags",
        lambda: encode_message(alive),
        1,
        len(alive_bytes),
    )
    bench(
        "decode_alive",
        "decode_message_untrusted of one alive with serf tags",
        lambda: decode_message_untrusted(alive_bytes),
        1,
        len(alive_bytes),
    )

    compound, n = full_compound(UDP_BUFFER_SIZE)
    for compression in (False, True):
        opts = WireOptions(compression=compression)
        packet = encode_packet(compound, opts, crc=True)
        assert len(decode_packet_untrusted(packet, opts).messages) == n
        tag = "on" if compression else "off"

        def round_trip(opts: WireOptions = opts) -> None:
            decode_packet_untrusted(encode_packet(compound, opts, crc=True), opts)

        def decode_only(packet: bytes = packet, opts: WireOptions = opts) -> None:
            decode_packet_untrusted(packet, opts)

        bench(
            f"compound_roundtrip_lzw_{tag}",
            f"encode_packet + decode_packet_untrusted, {n} alives in {UDP_BUFFER_SIZE} B, "
            f"CRC, compression {tag}",
            round_trip,
            n,
            len(packet),
        )
        bench(
            f"compound_decode_lzw_{tag}",
            f"decode_packet_untrusted only, same packet, compression {tag}",
            decode_only,
            n,
            len(packet),
        )

    nacl = crypto._nacl_usable()
    ciphers: list[tuple[str, bytes, str]] = [
        ("aes256", bytes(range(32)), "pynacl" if nacl else "cryptography (no AES-NI in libsodium)"),
        ("aes128", bytes(range(16)), "cryptography"),
    ]
    for label, key, backend in ciphers:
        try:
            opts = WireOptions(keyring=Keyring([key]), compression=False)
        except crypto.MissingCryptoBackend as exc:
            print(f"  skipping {label}: {exc}", file=sys.stderr)
            continue
        ecompound, en = full_compound(UDP_BUFFER_SIZE - opts.packet_overhead())
        packet = encode_packet(ecompound, opts, crc=True, nonce_source=os.urandom)
        assert len(decode_packet_untrusted(packet, opts).messages) == en

        def enc_round_trip(opts: WireOptions = opts, body: bytes = ecompound) -> None:
            decode_packet_untrusted(
                encode_packet(body, opts, crc=True, nonce_source=os.urandom), opts
            )

        bench(
            f"encrypted_roundtrip_{label}",
            f"encode_packet + decode_packet_untrusted, {en} alives, CRC, AES-GCM "
            f"{len(key) * 8}-bit via {backend}, encryption v1",
            enc_round_trip,
            en,
            len(packet),
        )
    return results


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "msgpack": _version("msgpack"),
        "pynacl": _version("PyNaCl"),
        "cryptography": _version("cryptography"),
        "nacl_aes256gcm_usable": crypto._nacl_usable(),
    }


def print_table(results: list[Result]) -> None:
    header = (
        f"{'benchmark':<30} {'msg/op':>6} {'bytes/op':>8} {'msg/s best':>12} {'msg/s median':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<30} {r.messages_per_op:>6} {r.op_bytes:>8} "
            f"{r.messages_per_s_best:>12,.0f} {r.messages_per_s_median:>13,.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="time spent per benchmark (default 2)"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)

    print(f"running wire benchmarks, {args.seconds:g} s each", file=sys.stderr)
    results = run(args.seconds)
    decode = next(r for r in results if r.name == "decode_alive")
    report = {
        "benchmark": "wire",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seconds_per_benchmark": args.seconds,
        "machine": machine_info(),
        "target": {
            "decode_alive_messages_per_s": DECODE_ALIVE_TARGET,
            "met": decode.messages_per_s_best >= DECODE_ALIVE_TARGET,
        },
        "results": [r.as_json() for r in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(results)
    verdict = "met" if report["target"]["met"] else "NOT met"
    print(
        f"\ndecode alive target {DECODE_ALIVE_TARGET:,}/s: {verdict} "
        f"({decode.messages_per_s_best:,.0f}/s best)"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
