"""Reading a large push/pull from a TCP stream: incremental StreamReader vs re-parsing.

Usage::

    python benchmarks/bench_stream.py [--repeat N] [--chunk BYTES] [--out PATH]

A push/pull is delivered in ``--chunk``-byte reads (default 64 KiB, a typical
``receive_some``). Three ways to read it, each timed ``--repeat`` times (best and median):

* ``reader``: one :class:`~swimpy.wire.StreamReader` per connection, ``receive_data`` +
  ``next_event`` after every read (each byte is parsed once);
* ``reparse``: the old engine's way, appending every read to a buffer and calling
  ``parse_stream_untrusted`` on the whole buffer after it until it stops raising
  ``NeedMoreData`` (quadratic in the number of reads);
* ``one_shot``: ``parse_stream_untrusted`` once on the complete stream, the floor.

Cases: 5,000 Serf-like member states (about 0.5 MB) and the same with 2 MiB of (random)
delegate user state, each uncompressed and LZW-compressed (memberlist compresses every stream by
default). Results go to ``benchmarks/results/stream.json`` and are printed.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # allow running from a checkout without installing
    sys.path.insert(0, str(_ROOT))

from bench_wire import machine_info, serf_meta  # noqa: E402

from swimpy.wire import NEED_DATA, NeedMoreData, PushPull, StreamReader  # noqa: E402
from swimpy.wire.messages import PushNodeState  # noqa: E402
from swimpy.wire.packet import WireOptions  # noqa: E402
from swimpy.wire.stream import (  # noqa: E402
    StreamMessage,
    encode_stream_message,
    frame_stream,
    parse_stream_untrusted,
)

DEFAULT_OUT = _ROOT / "benchmarks" / "results" / "stream.json"
SERF_VSN = bytes((1, 5, 2, 2, 5, 5))


def push_pull(nodes: int, user_state: int) -> PushPull:
    """A push/pull as a Serf agent sends it: serf tags as meta, serf versions."""
    states = tuple(
        PushNodeState(
            name=f"node-{i:05d}.dc1",
            addr=bytes((10, i // 65536 % 256, i // 256 % 256, i % 256)),
            port=7946,
            meta=serf_meta({"role": "web", "dc": "dc1", "rack": f"r{i % 8}"}),
            incarnation=1 + i % 7,
            state=0 if i % 50 else 2,
            vsn=SERF_VSN,
        )
        for i in range(nodes)
    )
    # random user state: Serf's is msgpack of names and times, which LZW shrinks less
    # than the repetitive member table
    return PushPull(False, states, random.Random(user_state).randbytes(user_state))


def reads(raw: bytes, chunk: int) -> Iterator[bytes]:
    return (raw[i : i + chunk] for i in range(0, len(raw), chunk))


def read_incrementally(raw: bytes, opts: WireOptions, chunk: int) -> StreamMessage:
    reader = StreamReader(opts, expect_label=False)
    for data in reads(raw, chunk):
        reader.receive_data(data)
        event = reader.next_event()
        if event is not NEED_DATA:
            return event
    raise AssertionError("stream incomplete")


def read_by_reparsing(raw: bytes, opts: WireOptions, chunk: int) -> StreamMessage:
    buf = b""
    for data in reads(raw, chunk):
        buf += data
        try:
            return parse_stream_untrusted(buf, opts, expect_label=False)
        except NeedMoreData:
            continue
    raise AssertionError("stream incomplete")


def timed(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    times: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"best_s": round(min(times), 5), "median_s": round(statistics.median(times), 5)}


def run(repeat: int, chunk: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for nodes, user_state in ((5_000, 0), (5_000, 2 * 1024 * 1024)):
        msg = push_pull(nodes, user_state)
        body = encode_stream_message(msg)
        for compression in (False, True):
            opts = WireOptions(compression=compression)
            raw = frame_stream(body, opts, dialer=False)
            assert read_incrementally(raw, opts, chunk) == msg
            assert read_by_reparsing(raw, opts, chunk) == msg
            case: dict[str, Any] = {
                "name": f"{nodes}_nodes_{user_state // 1024}KiB_user_"
                + ("lzw" if compression else "plain"),
                "nodes": nodes,
                "user_state_bytes": user_state,
                "compression": compression,
                "body_bytes": len(body),
                "stream_bytes": len(raw),
                "chunk_bytes": chunk,
                "reads": -(-len(raw) // chunk),
                "reader": timed(functools.partial(read_incrementally, raw, opts, chunk), repeat),
                "reparse": timed(functools.partial(read_by_reparsing, raw, opts, chunk), repeat),
                "one_shot": timed(
                    functools.partial(parse_stream_untrusted, raw, opts, expect_label=False),
                    repeat,
                ),
            }
            case["speedup_best"] = round(case["reparse"]["best_s"] / case["reader"]["best_s"], 2)
            case["reader_mb_per_s"] = round(len(raw) / case["reader"]["best_s"] / 1e6, 1)
            results.append(case)
            print(f"  {case['name']:<32} done", file=sys.stderr)
    return results


def print_table(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'case':<32} {'bytes':>9} {'reads':>5} {'reader s':>9} {'reparse s':>10} "
        f"{'one-shot s':>10} {'speedup':>8}"
    )
    print(header)
    print("-" * len(header))
    for c in results:
        print(
            f"{c['name']:<32} {c['stream_bytes']:>9} {c['reads']:>5} "
            f"{c['reader']['best_s']:>9.4f} {c['reparse']['best_s']:>10.4f} "
            f"{c['one_shot']['best_s']:>10.4f} {c['speedup_best']:>7.1f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument(
        "--chunk", type=int, default=64 * 1024, help="bytes per read (default 65536)"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)

    print(f"running stream benchmarks, {args.repeat} runs each", file=sys.stderr)
    results = run(args.repeat, args.chunk)
    report = {
        "benchmark": "stream",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "repeat": args.repeat,
        "machine": machine_info(),
        "results": results,
    }
    text = json.dumps(report, indent=2) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print_table(results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
