"""Broadcast queue throughput: the tiered queue against the sort-and-scan one it replaced.

Usage::

    python benchmarks/bench_queue.py [--reps R] [--scale F] [--out PATH]

The old implementation (swimpy up to commit edc75fe) re-sorted every queued broadcast with
a Python key function on each ``get_broadcasts`` and then scanned all of them, including
the ones that could not fit; invalidating a named broadcast was a ``list.remove`` (one
dataclass ``__eq__`` per queued item). It is copied below as ``OldBroadcastQueue`` so both
can be timed side by side on the same deterministic workloads. Before timing, each
workload is run once through both queues and their outputs (picked broadcasts in order,
finished tokens, lengths) must be identical.

Each workload is a fixed sequence of operations from a fixed starting state; a repetition
builds the starting state (untimed), then times the whole sequence. Reported: operations
per second, best and median over ``R`` repetitions, and the speedup. Results are written
as JSON (default ``benchmarks/results/queue.json``) and printed as a table.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # allow running from a checkout without installing
    sys.path.insert(0, str(_ROOT))

from swimpy.core.lifeguard import retransmit_limit  # noqa: E402
from swimpy.core.queue import Broadcast, BroadcastQueue  # noqa: E402
from swimpy.wire.constants import (  # noqa: E402
    COMPOUND_HEADER_OVERHEAD,
    COMPOUND_MAX_PARTS,
    COMPOUND_PART_OVERHEAD,
)
from swimpy.wire.messages import Alive, UserMsg, encode_message  # noqa: E402

#: memberlist's default UDPBufferSize
UDP_BUFFER_SIZE = 1400
#: what the gossip tick hands the queue: the packet less the compound header, each part
#: costing its 2-byte length (net.go compoundHeaderOverhead / compoundOverhead)
GOSSIP_LIMIT = UDP_BUFFER_SIZE - COMPOUND_HEADER_OVERHEAD
DEFAULT_OUT = _ROOT / "benchmarks" / "results" / "queue.json"


@dataclass(slots=True)
class OldBroadcastQueue:
    """The sort-and-scan queue, verbatim from swimpy edc75fe (minus ``reset``)."""

    retransmit_mult: int
    max_depth: int = 4096
    _items: list[Broadcast] = field(default_factory=list)
    _by_name: dict[str, Broadcast] = field(default_factory=dict)
    _next_id: int = 0
    _sorted: bool = True
    _finished: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._items)

    def queue(self, b: Broadcast) -> None:
        self._next_id += 1
        b.id = self._next_id
        b.transmits = 0
        if b.name is not None:
            old = self._by_name.pop(b.name, None)
            if old is not None:
                self._items.remove(old)
                self._finish(old)
            self._by_name[b.name] = b
        self._items.append(b)
        self._sorted = False
        if len(self._items) - len(self._by_name) > self.max_depth:
            self.prune(self.max_depth)

    def _finish(self, b: Broadcast) -> None:
        if b.notify is not None:
            self._finished.append(b.notify)

    def take_finished(self) -> list[int]:
        out, self._finished = self._finished, []
        return out

    def _sort(self) -> None:
        if not self._sorted:
            self._items.sort(key=lambda b: (b.transmits, -b.size, -b.id))
            self._sorted = True

    def get_broadcasts(
        self, overhead: int, limit: int, num_nodes: int, max_parts: int
    ) -> list[Broadcast]:
        if not self._items:
            return []
        self._sort()
        tlimit = retransmit_limit(self.retransmit_mult, num_nodes)
        used = 0
        out: list[Broadcast] = []
        for b in self._items:
            free = limit - used - overhead
            if free <= 0 or len(out) >= max_parts:
                break
            if b.size <= free:
                used += overhead + b.size
                out.append(b)
        if not out:
            return out
        done = False
        for b in out:
            b.transmits += 1
            if b.transmits >= tlimit:
                done = True
        if done:
            keep = []
            for b in self._items:
                if b.transmits >= tlimit:
                    if b.name is not None and self._by_name.get(b.name) is b:
                        del self._by_name[b.name]
                    self._finish(b)
                else:
                    keep.append(b)
            self._items = keep
        self._sorted = False
        return out

    def prune(self, max_retain: int) -> None:
        unnamed = [b for b in self._items if b.name is None]
        if len(unnamed) <= max_retain:
            return
        self._sort()
        unnamed = [b for b in self._items if b.name is None]
        drop = {id(b) for b in unnamed[max_retain:]}
        keep = []
        for b in self._items:
            if id(b) in drop:
                self._finish(b)
            else:
                keep.append(b)
        self._items = keep


Queue = BroadcastQueue | OldBroadcastQueue
QueueFactory = Callable[[int, int], Queue]  # (retransmit_mult, max_depth) -> queue

IMPLEMENTATIONS: dict[str, QueueFactory] = {
    "old": lambda mult, depth: OldBroadcastQueue(mult, depth),
    "new": lambda mult, depth: BroadcastQueue(mult, depth),
}


class Recorder:
    """Digest of everything a workload observes, to check both queues agree (timed runs
    skip it: ``enabled`` is False)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._h = hashlib.sha256()

    def note(self, value: object) -> None:
        self._h.update(repr(value).encode())

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def alive_broadcast(rng: random.Random, member: int, incarnation: int) -> Broadcast:
    """A named alive as the engine queues it: 60-90 bytes encoded (meta of 0-25 bytes)."""
    msg = Alive(
        incarnation=incarnation,
        node=f"node-{member:04d}",
        addr=bytes((10, 0, member // 256 % 256, member % 256)),
        port=7946,
        meta=bytes(rng.randrange(256) for _ in range(rng.randrange(26))),
        vsn=bytes((1, 5, 2, 2, 5, 5)),
    )
    raw = encode_message(msg)
    return Broadcast(msg.node, msg, raw, len(raw), notify=member)


def user_broadcast(rng: random.Random, token: int) -> Broadcast:
    msg = UserMsg(bytes(rng.randrange(20, 200)))
    raw = encode_message(msg)
    return Broadcast(None, msg, raw, len(raw), notify=token)


@dataclass(slots=True)
class Workload:
    name: str
    what: str
    ops: int
    #: builds the starting state (untimed) and returns the timed part
    prepare: Callable[[QueueFactory, Recorder], Callable[[], None]]


def steady_gossip(members: int, ticks: int) -> Workload:
    """``members`` alives queued; each op is one gossip packet, and every member whose
    broadcast finished is re-queued fresh (a new incarnation), keeping the queue full."""

    def prepare(make: QueueFactory, rec: Recorder) -> Callable[[], None]:
        rng = random.Random(1)
        q = make(4, 4096)
        pool = [alive_broadcast(rng, i, 1) for i in range(members)]
        for b in pool:
            q.queue(b)

        def run() -> None:
            for _ in range(ticks):
                got = q.get_broadcasts(
                    COMPOUND_PART_OVERHEAD, GOSSIP_LIMIT, members, COMPOUND_MAX_PARTS
                )
                finished = q.take_finished()
                for member in finished:
                    # a finished broadcast is no longer queued: queue it again as the
                    # member's next alive (fresh id, 0 transmits) without encoding anew
                    q.queue(pool[member])
                if rec.enabled:
                    rec.note(([(b.name, b.id, b.transmits) for b in got], finished, len(q)))

        return run

    return Workload(
        f"gossip_tick_{members}_alive",
        f"{members} queued named alives of 60-90 B; one op = get_broadcasts for a "
        f"{UDP_BUFFER_SIZE}-byte packet (overhead {COMPOUND_PART_OVERHEAD}, limit "
        f"{GOSSIP_LIMIT}, num_nodes {members}, max {COMPOUND_MAX_PARTS} parts) and "
        "re-queueing every member whose broadcast finished",
        ticks,
        prepare,
    )


def invalidate(members: int, ops: int) -> Workload:
    """``members`` alives queued; each op queues a newer alive for a random member,
    finishing the queued one (memberlist's named-broadcast invalidation)."""

    def prepare(make: QueueFactory, rec: Recorder) -> Callable[[], None]:
        rng = random.Random(2)
        q = make(4, 4096)
        for i in range(members):
            q.queue(alive_broadcast(rng, i, 1))
        news = [alive_broadcast(rng, rng.randrange(members), 2 + i) for i in range(ops)]

        def run() -> None:
            for b in news:
                q.queue(b)
            if rec.enabled:
                rec.note((q.take_finished(), len(q)))

        return run

    return Workload(
        f"queue_invalidate_{members}_alive",
        f"{members} queued named alives; one op = queue a newer alive for a random member "
        "(replacing and finishing its queued one)",
        ops,
        prepare,
    )


def forming(members: int, ticks: int) -> Workload:
    """One member's queue while a cluster forms: each tick two alives arrive (a new
    member, or a refreshed incarnation once everyone is known) and one gossip packet is
    built, with ``num_nodes`` the members known so far."""

    def prepare(make: QueueFactory, rec: Recorder) -> Callable[[], None]:
        rng = random.Random(3)
        q = make(4, 4096)
        arrivals: list[tuple[Broadcast, int]] = []
        known = 1
        for i in range(ticks * 2):
            if known < members:
                member = known
                known += 1
            else:
                member = rng.randrange(members)
            arrivals.append((alive_broadcast(rng, member, 1 + i), known))

        def run() -> None:
            for t in range(ticks):
                for b, _ in arrivals[2 * t : 2 * t + 2]:
                    q.queue(b)
                n = arrivals[2 * t + 1][1]
                got = q.get_broadcasts(COMPOUND_PART_OVERHEAD, GOSSIP_LIMIT, n, COMPOUND_MAX_PARTS)
                finished = q.take_finished()
                if rec.enabled:
                    rec.note(([(b.name, b.id, b.transmits) for b in got], finished, len(q)))

        return run

    return Workload(
        f"cluster_forming_{members}",
        f"a member's queue while {members} members join (2 alives queued per tick); one op = "
        "one tick: the two queue() calls and one gossip get_broadcasts",
        ticks,
        prepare,
    )


def user_events(depth: int, ops: int) -> Workload:
    """Unnamed user broadcasts at the queue's max depth: every queue() prunes one."""

    def prepare(make: QueueFactory, rec: Recorder) -> Callable[[], None]:
        rng = random.Random(4)
        q = make(4, depth)
        for i in range(depth):
            q.queue(user_broadcast(rng, i))
        news = [user_broadcast(rng, depth + i) for i in range(ops)]

        def run() -> None:
            for b in news:
                q.queue(b)
            if rec.enabled:
                rec.note((q.take_finished(), len(q)))

        return run

    return Workload(
        f"user_event_at_max_depth_{depth}",
        f"{depth} queued user broadcasts of 20-200 B (max_depth {depth}); one op = queue one "
        "more, which prunes one",
        ops,
        prepare,
    )


def workloads(scale: float) -> list[Workload]:
    def n(x: int) -> int:
        return max(1, round(x * scale))

    return [
        steady_gossip(3000, n(1000)),
        invalidate(3000, n(1000)),
        forming(300, n(3000)),
        forming(20, n(3000)),
        user_events(4096, n(300)),
    ]


def check(w: Workload) -> None:
    digests = {}
    for impl, make in IMPLEMENTATIONS.items():
        rec = Recorder(True)
        w.prepare(make, rec)()
        digests[impl] = rec.hexdigest()
    if len(set(digests.values())) != 1:
        raise SystemExit(f"{w.name}: the queues disagree: {digests}")


def time_it(w: Workload, make: QueueFactory, reps: int) -> list[float]:
    rates = []
    for _ in range(reps):
        run = w.prepare(make, Recorder(False))
        start = time.perf_counter()
        run()
        rates.append(w.ops / (time.perf_counter() - start))
    return rates


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
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions (default 5)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every workload's length (default 1)"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)

    results: list[dict[str, Any]] = []
    header = f"{'workload':<32} {'ops':>6} {'old ops/s':>12} {'new ops/s':>12} {'speedup':>8}"
    print(header)
    print("-" * len(header))
    for w in workloads(args.scale):
        check(w)
        row: dict[str, Any] = {"name": w.name, "what": w.what, "ops_per_rep": w.ops}
        for impl, make in IMPLEMENTATIONS.items():
            rates = time_it(w, make, args.reps)
            row[impl] = {
                "ops_per_s_best": round(max(rates), 1),
                "ops_per_s_median": round(statistics.median(rates), 1),
            }
        row["speedup_best"] = round(row["new"]["ops_per_s_best"] / row["old"]["ops_per_s_best"], 1)
        row["speedup_median"] = round(
            row["new"]["ops_per_s_median"] / row["old"]["ops_per_s_median"], 1
        )
        results.append(row)
        print(
            f"{w.name:<32} {w.ops:>6} {row['old']['ops_per_s_best']:>12,.0f} "
            f"{row['new']['ops_per_s_best']:>12,.0f} {row['speedup_best']:>7.1f}x"
        )
    report = {
        "benchmark": "queue",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "reps": args.reps,
        "scale": args.scale,
        "machine": machine_info(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nops/s are best of {args.reps}; medians in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
