"""One kinship member in its own process, for ``bench_cluster.py`` (kinship ships no agent).

Usage::

    python benchmarks/cluster/kinship_member.py --name k-00 --bind 127.0.0.1:7946 \
        [--seed 127.0.0.1:7947 ...]

Starts a ``kinship.blocking.Cluster`` with ``Config.lan()`` (kinship's LAN preset: 1 s
probes, 0.5 s probe timeout, suspicion multiplier 4, 200 ms gossip to 3, 30 s push/pull,
as memberlist's ``DefaultLANConfig``), plaintext like the other two systems in the
benchmark, and prints one line per membership event on stdout, flushed at once::

    KIN <time.monotonic()> <Event> <member name> <state>

``<Event>`` is kinship's event class name (MemberJoined, MemberSuspect, MemberRecovered,
MemberDead, MemberLeft, MemberUpdated, NameConflict, EventsLost). CLOCK_MONOTONIC is
system-wide on Linux, so the benchmark can compare these stamps with its own. SIGTERM
leaves and closes; SIGKILL is what the benchmark sends to crash it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from types import FrameType

import kinship
from kinship import blocking


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one kinship member printing its events")
    parser.add_argument("--name", required=True)
    parser.add_argument("--bind", required=True, help="HOST:PORT (UDP and TCP)")
    parser.add_argument("--seed", action="append", default=[], help="HOST:PORT to join")
    args = parser.parse_args(argv)

    cfg = kinship.Config.lan(name=args.name, bind=args.bind, seeds=args.seed,
                             insecure_plaintext=True)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    cluster = blocking.Cluster(cfg).start(timeout=30)
    # Subscribe before announcing readiness, so no event after "READY" is missed.
    stream = cluster.events(timeout=0.2)
    # Members the startup join already found came before the subscription: report them
    # now (stamped late by the few milliseconds since, which only counts against kinship).
    now = time.monotonic()
    for m in cluster.members():
        if m.name != args.name:
            print(f"KIN {now:.6f} MemberJoined {m.name} {m.state.name.lower()}", flush=True)
    print(f"READY {time.monotonic():.6f} {args.name} {cluster.local.addr}", flush=True)
    try:
        for event in stream:
            if stop.is_set():
                break
            if event is None:
                continue
            member = getattr(event, "member", None)
            if member is None:  # EventsLost
                print(f"KIN {time.monotonic():.6f} {type(event).__name__} - -", flush=True)
                continue
            print(f"KIN {time.monotonic():.6f} {type(event).__name__} {member.name} "
                  f"{member.state.name.lower()}", flush=True)
    finally:
        cluster.close(timeout=2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
