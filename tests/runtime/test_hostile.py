"""A live node takes hostile input on real loopback sockets and stays healthy.

Three swimpy nodes (``profiles.local``) form a cluster inside one ``trio.run``. The victim
runs in memberlist's key-migration mode (a key installed, ``gossip_verify_incoming`` and
``gossip_verify_outgoing`` off): it tries to decrypt everything and also takes plaintext,
so both the AES-GCM path and the plaintext decoders face the attack, while it still talks
plaintext to its two plain peers.

* UDP: 20,000 datagrams from a plain socket: mutations of the golden memberlist packets
  (bit flips, truncations, extensions, byte swaps, splices, msgpack headers announcing
  2^31 entries, ...; some re-wrapped with a valid CRC, LZW or AES-GCM layer so that the
  mutation reaches the decoder behind it) and purely random bytes of up to 65,000 bytes.
* TCP: streams announcing 2^31 bytes or entries, decompression bombs, streams stalled
  after a huge header (closed by the node after ``tcp_timeout``), a 21 MiB flood, mutated
  golden streams, garbage, and 300 idle connections (more than the runtime's cap).

Throughout, a monitor checks that the node runs, that every node sees all three members
alive, that the victim's own entry does not change and that its table stays consistent;
every member event is recorded (there must be none: no false suspicion). Afterwards the
victim's drop counters must name the expected reasons, legitimate traffic (probes, a
reliable message, a push/pull) must still work, its buffers must be empty again and the
process RSS must not have grown much.

Mutants that decode into a *valid* message the node would act on towards third parties
(an ``alive`` adding a member, an indirect ping, a ping it would answer at a forged
address, a push/pull carrying members) are not hostile input but legitimate gossip about
made-up members; they are skipped (and counted), so the expected member table is exact.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import resource
import select
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import trio

from swimpy import MemberEvent, Node, UserMessage, open_node, profiles
from swimpy.core.member import Member, State
from swimpy.profiles import Config
from swimpy.runtime import Subscription
from swimpy.runtime.streams import MAX_INBOUND_CONNECTIONS
from swimpy.testing import assert_table_consistent
from swimpy.wire.constants import MAX_PUSH_STATE_BYTES, MAX_USER_MSG_BYTES, MessageType
from swimpy.wire.crypto import Keyring, encrypt_payload
from swimpy.wire.errors import WireError
from swimpy.wire.messages import (
    Ack,
    Alive,
    Compress,
    Dead,
    Err,
    IndirectPing,
    Nack,
    Ping,
    PushNodeState,
    PushPullHeader,
    Suspect,
    UserMsg,
    UserMsgHeader,
    encode_body,
    encode_message,
)
from swimpy.wire.packet import (
    WireOptions,
    add_crc,
    add_label_header,
    compress_payload,
    decode_packet_untrusted,
    make_compound,
)
from swimpy.wire.stream import (
    PushPull,
    encode_push_pull,
    encode_user_stream,
    frame_stream,
    parse_stream_untrusted,
)
from tests.wire.test_lzw import _zero_bomb

_load_vectors: Callable[[], dict[str, bytes]] | None
try:  # the golden vectors' loader (reads tests/wire/vectors, the copy of shared/vectors)
    from tests.wire.test_messages import load_vectors as _load_vectors
except OSError:  # the vector files are missing: the test encodes its own seed packets
    _load_vectors = None

NAMES = ("victim", "peer-1", "peer-2")
#: the golden vectors' key and nonce (memberlist-0.2.2.txt section 3)
KEY16 = bytes(range(16))
NONCE = bytes(range(0xA0, 0xAC))
LOCALHOST = bytes((127, 0, 0, 1))
SERF_META = b"\xff\x81\xa4role\xa3web"
VSN = bytes((1, 5, 2, 2, 5, 4))

UDP_DATAGRAMS = 20_000
UDP_SEED = 0x5EED_0DD
TCP_SEED = 0x7C9_0DD
MAX_DATAGRAM = 65_000
IDLE_CONNECTIONS = 300
#: generous: a leak of a few hundred bytes per hostile datagram or connection would
#: still show, allocator noise and the 21 MiB stream buffered once do not
RSS_GROWTH_LIMIT = 200 * 1024 * 1024

#: the victim's wire settings (what Net builds from its config), to classify mutants
VICTIM_WIRE = WireOptions(keyring=Keyring([KEY16]), verify_incoming=False,
                          verify_outgoing=False)


def _config(name: str, **kw: Any) -> Config:
    return profiles.local(name=name, bind_addr="127.0.0.1", bind_port=0, **kw)


def _victim_config() -> Config:
    return _config(NAMES[0], secret_keys=(KEY16,), gossip_verify_incoming=False,
                   gossip_verify_outgoing=False)


def _addr(node: Node) -> str:
    host, port = node.address
    return f"{host}:{port}"


def _rss() -> int:
    """Resident set size now (Linux), else the peak so far (getrusage), in bytes."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# ------------------------------------------------------------------------------ seeds


def _encoded_packets() -> list[bytes]:
    """Stand-ins for the golden packets, encoded with swimpy.wire (same values)."""
    msgs = [
        Ping(1, "node-b", LOCALHOST, 7946, "node-a"),
        Ping(42, "node-b"),
        IndirectPing(7, bytes((127, 0, 0, 2)), 7946, "node-c", True, LOCALHOST, 7946, "node-a"),
        Ack(1),
        Ack(300, b"\x01\x02\x03"),
        Nack(7),
        Err("boom"),
        Suspect(3, "node-c", "node-a"),
        Alive(2, "node-a", LOCALHOST, 7946, SERF_META, VSN),
        Dead(3, "node-c", "node-a"),
        Dead(3, "node-a", "node-a"),
        UserMsg(b"hello"),
        Suspect(70000, "n" * 40, "x"),
    ]
    parts = [encode_message(m) for m in msgs]
    plain = parts[1]
    return [
        *parts,
        make_compound([parts[0], parts[7]]),
        add_crc(parts[0]),
        compress_payload(parts[8]),
        encrypt_payload(0, KEY16, plain, b"", NONCE),
        encrypt_payload(1, KEY16, plain, b"", NONCE),
        encrypt_payload(1, KEY16, plain, b"lbl", NONCE),
        add_label_header(encrypt_payload(1, KEY16, plain, b"lbl", NONCE), b"lbl"),
        make_compound([parts[0], parts[8]]),
        add_crc(plain),
        encrypt_payload(1, KEY16, add_crc(plain), b"", NONCE),
    ]


def _encoded_streams() -> list[bytes]:
    nodes = [
        PushNodeState("node-b", bytes((127, 0, 0, 2)), 7946, b"", 1, 0, bytes((1, 5, 2, 2, 5, 4))),
        PushNodeState("node-a", LOCALHOST, 7946, SERF_META, 1, 0, VSN),
    ]
    push_pull = encode_push_pull(False, nodes, b"\xde\xad\xbe\xef")
    keyed = WireOptions(keyring=Keyring([KEY16]), compression=False)
    return [
        encode_push_pull(True, nodes, b"\xde\xad\xbe\xef"),
        push_pull,
        encode_user_stream(b"hello"),
        encode_message(Ping(1, "node-b", LOCALHOST, 7946, "node-a")),
        frame_stream(encode_message(Ping(42, "node-b")), keyed, nonce_source=lambda n: NONCE),
        compress_payload(push_pull),
    ]


def _seed_corpus() -> tuple[list[bytes], list[bytes], str]:
    """(UDP seeds, TCP seeds, where they came from)."""
    golden: dict[str, bytes] = {}
    if _load_vectors is not None:
        with contextlib.suppress(OSError):
            golden = _load_vectors()
    if golden:
        udp = [v for v in golden.values() if v]
        tcp = [v for k, v in golden.items() if k.startswith("TCP") and v]
        return udp, tcp, f"{len(golden)} golden vectors"
    return _encoded_packets(), _encoded_streams(), "self-encoded packets"


def _raw_compound(parts: list[bytes]) -> bytes:
    """A compound of up to 255 parts (make_compound stops at 127, as v0.2.2 peers need)."""
    return (bytes((MessageType.COMPOUND, len(parts)))
            + b"".join(struct.pack(">H", len(p)) for p in parts) + b"".join(parts))


UDP_SEEDS, TCP_SEEDS, SEED_SOURCE = _seed_corpus()
#: always added: a UDP decompression bomb, a 255-part compound and deep msgpack nesting
SPECIAL_SEEDS = [
    encode_message(Compress(0, _zero_bomb(400))),
    _raw_compound([encode_message(Ping(i, "node-b")) for i in range(255)]),
    b"\x00" + b"\x91" * 3000,
    b"\x07\xff" + b"\xff\xff" * 255,
]


# ------------------------------------------------------------------------------ mutation

_TYPE_BYTES = tuple(int(t) for t in MessageType)
_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xCE,
                0xCF, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, *_TYPE_BYTES)
#: msgpack headers announcing absurd sizes, and absurd nesting
_HUGE = (
    b"\xdf\xff\xff\xff\xff",  # map32 of 2^32-1 entries
    b"\xdf\x80\x00\x00\x00",  # map32 of 2^31 entries
    b"\xdd\x80\x00\x00\x00",  # array32 of 2^31 entries
    b"\xdb\x80\x00\x00\x00",  # str32 of 2^31 bytes
    b"\xc6\x80\x00\x00\x00",  # bin32 of 2^31 bytes
    b"\xc6\x00\x10\x00\x00",  # bin32 of 1 MiB
    b"\xda\xff\xff",  # str16 of 65535 bytes
    b"\xdc\xff\xff",  # array16 of 65535 entries
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",  # uint64 max
    b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",  # int64 min
    b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",  # float64 NaN
    b"\xc1",  # never used
    b"\xd4\x00\x00",  # fixext1
    b"\x91" * 2000,  # 2000 nested arrays
    b"\x81\xc0" * 500,  # nested maps keyed by nil
)


def _loglen(rng: random.Random, top: int = MAX_DATAGRAM) -> int:
    """A length between 0 and ``top``, uniform in log scale (mostly short, some huge)."""
    return min(top, int(2 ** rng.uniform(0, math.log2(top + 1))))


class Fuzzer:
    def __init__(self, rng: random.Random, seeds: list[bytes]) -> None:
        self.rng = rng
        self.seeds = seeds
        self.ops: list[Callable[[bytes], bytes]] = [
            self.flip, self.flip, self.truncate, self.extend, self.swap, self.interesting,
            self.insert_huge, self.splice, self.repeat, self.length_field, self.delete,
        ]

    def flip(self, d: bytes) -> bytes:
        if not d:
            return d
        b = bytearray(d)
        for _ in range(self.rng.randint(1, 8)):
            b[self.rng.randrange(len(b))] ^= 1 << self.rng.randrange(8)
        return bytes(b)

    def truncate(self, d: bytes) -> bytes:
        return d[: self.rng.randrange(len(d) + 1)]

    def extend(self, d: bytes) -> bytes:
        n = _loglen(self.rng)
        return d + self.rng.randbytes(max(1, n - len(d)))

    def swap(self, d: bytes) -> bytes:
        if len(d) < 2:
            return d
        b = bytearray(d)
        for _ in range(self.rng.randint(1, 4)):
            i, j = self.rng.randrange(len(b)), self.rng.randrange(len(b))
            b[i], b[j] = b[j], b[i]
        return bytes(b)

    def interesting(self, d: bytes) -> bytes:
        if not d:
            return bytes((self.rng.choice(_INTERESTING),))
        b = bytearray(d)
        b[self.rng.randrange(len(b))] = self.rng.choice(_INTERESTING)
        return bytes(b)

    def insert_huge(self, d: bytes) -> bytes:
        i = self.rng.randrange(len(d) + 1)
        return d[:i] + self.rng.choice(_HUGE) + d[i:]

    def splice(self, d: bytes) -> bytes:
        other = self.rng.choice(self.seeds)
        return d[: self.rng.randrange(len(d) + 1)] + other[self.rng.randrange(len(other) + 1):]

    def repeat(self, d: bytes) -> bytes:
        if not d:
            return d
        i = self.rng.randrange(len(d))
        j = self.rng.randrange(i, len(d)) + 1
        return d[:j] + d[i:j] * self.rng.randint(1, 64) + d[j:]

    def length_field(self, d: bytes) -> bytes:
        """Overwrite 2 or 4 bytes with an extreme big-endian value (compound lengths,
        frame lengths, CRCs)."""
        if len(d) < 4:
            return d
        width = self.rng.choice((2, 4))
        value = self.rng.choice((0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
                                 self.rng.getrandbits(32)))
        raw = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "big")
        i = self.rng.randrange(len(d) - width + 1)
        return d[:i] + raw + d[i + width:]

    def delete(self, d: bytes) -> bytes:
        if not d:
            return d
        i = self.rng.randrange(len(d))
        return d[:i] + d[i + self.rng.randint(1, 16):]

    def mutant(self) -> bytes:
        rng = self.rng
        d = rng.choice(self.seeds)
        for _ in range(rng.randint(1, 3)):
            d = rng.choice(self.ops)(d)
        return d

    def wrapped(self, d: bytes) -> bytes:
        """Sometimes put a valid outer layer around a mutant, so it gets past the CRC,
        the decompressor or the decryption to the decoder behind."""
        rng = self.rng
        r = rng.random()
        if r < 0.08:
            return add_crc(d)
        if r < 0.14 and len(d) <= 2048:
            return compress_payload(d)
        if r < 0.22:
            return encrypt_payload(rng.choice((0, 1)), KEY16, d, b"", rng.randbytes(12))
        if r < 0.30:
            parts = [d[:0xFFFF]] + [self.mutant()[:4096] for _ in range(rng.randint(0, 5))]
            rng.shuffle(parts)
            return make_compound(parts)
        return d

    def datagram(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.15:
            d = rng.randbytes(_loglen(rng))
            if d and rng.random() < 0.5:
                d = bytes((rng.choice(_TYPE_BYTES),)) + d[1:]
        else:
            d = self.wrapped(self.mutant())
        return d[:MAX_DATAGRAM]


def _acts_on_others(data: bytes) -> bool:
    """Whether the victim would take this datagram as valid gossip that changes its table
    or makes it send to an address named in the packet (not hostile: legitimate)."""
    try:
        decoded = decode_packet_untrusted(data, VICTIM_WIRE)
    except WireError:
        return False
    for m in decoded.messages:
        if isinstance(m, Alive | IndirectPing):
            return True
        if isinstance(m, Ping) and m.node in ("", NAMES[0]):
            return True
        if isinstance(m, Suspect | Dead) and m.node in NAMES:
            return True
    return False


def _stream_acts_on_others(data: bytes) -> bool:
    try:
        msg = parse_stream_untrusted(data, VICTIM_WIRE, expect_label=True)
    except WireError:  # NeedMoreData included: the victim sees a truncated stream
        return False
    return isinstance(msg, PushPull) and bool(msg.nodes)


# ------------------------------------------------------------------------------ harness


class _LogCounter(logging.Handler):
    """Counts swimpy's log records by level (every bad packet is a warning: 20,000 of
    them would otherwise pile up in pytest's log capture) and keeps the first errors."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1
        if record.levelno >= logging.ERROR and len(self.errors) < 20:
            self.errors.append(self.format(record))


@contextlib.contextmanager
def _counted_swimpy_log() -> Iterator[_LogCounter]:
    logger = logging.getLogger("swimpy")
    saved = (logger.level, logger.propagate)
    handler = _LogCounter()
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = saved


def _entry(m: Member | None) -> tuple[object, ...] | None:
    if m is None:
        return None
    return (m.name, m.addr, m.port, m.meta, m.incarnation, m.state, m.vsn, m.ip_bytes)


@dataclass
class Harness:
    victim: Node
    peers: list[Node]
    start: float = field(default_factory=time.monotonic)
    #: first time each distinct problem was seen, by the monitor
    violations: dict[str, float] = field(default_factory=dict)
    member_events: list[tuple[str, str, str]] = field(default_factory=list)
    user_payloads: list[bytes] = field(default_factory=list)
    checks: int = 0
    rss_before: int = 0
    rss_peak: int = 0
    self_entry: tuple[object, ...] | None = None

    @property
    def nodes(self) -> list[Node]:
        return [self.victim, *self.peers]

    def note(self, problem: str) -> None:
        self.violations.setdefault(problem, round(time.monotonic() - self.start, 3))

    def check(self) -> None:
        """The victim runs, every node sees all three alive, the victim's own entry is
        unchanged, no other member appeared, the table is consistent."""
        self.checks += 1
        for node in self.nodes:
            if node.closed:
                self.note(f"{node.name} closed")
                continue
            for name in NAMES:
                m = node.member(name)
                if m is None or m.state is not State.ALIVE:
                    self.note(f"{node.name} sees {name} as "
                              f"{'missing' if m is None else m.state.name}")
        if _entry(self.victim.member(NAMES[0])) != self.self_entry:
            self.note(f"victim's own entry changed: {self.victim.member(NAMES[0])}")
        extra = {m.name for m in self.victim.all_members()} - set(NAMES)
        if extra:
            self.note(f"victim's table gained {sorted(extra)}")
        try:
            assert_table_consistent(self.victim._driver.engine)
        except AssertionError as exc:
            self.note(f"table inconsistent: {exc}")
        self.rss_peak = max(self.rss_peak, _rss())

    async def monitor(self) -> None:
        while True:
            self.check()
            await trio.sleep(0.05)

    async def collect(self, node: Node, events: Subscription) -> None:
        async for ev in events:
            if isinstance(ev, MemberEvent):
                self.member_events.append((node.name, ev.kind.value, ev.member.name))
            elif isinstance(ev, UserMessage) and node is self.victim:
                self.user_payloads.append(ev.payload)

    async def until(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            with trio.fail_after(timeout):
                while not pred():
                    await trio.sleep(0.02)
        except trio.TooSlowError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def _all_alive(node: Node) -> bool:
    return all((m := node.member(n)) is not None and m.state is State.ALIVE for n in NAMES)


Attack = Callable[[Harness], Awaitable[None]]


def run_against_cluster(attack: Attack) -> Harness:
    """Form the cluster, run ``attack`` with the monitor and event collectors running,
    then check that legitimate traffic still works and the victim's buffers drained."""
    out: list[Harness] = []

    async def main() -> None:
        async with AsyncExitStack() as stack:
            victim = await stack.enter_async_context(open_node(_victim_config()))
            peers = [await stack.enter_async_context(open_node(_config(n))) for n in NAMES[1:]]
            h = Harness(victim, peers)
            out.append(h)
            with trio.fail_after(10):
                for p in peers:
                    assert await p.join([_addr(victim)]) == 1
            await h.until(lambda: all(_all_alive(n) for n in h.nodes), 10,
                          "all three nodes to see three alive members")
            h.self_entry = _entry(victim.member(NAMES[0]))
            h.rss_before = h.rss_peak = _rss()
            async with trio.open_nursery() as nursery:
                for node in h.nodes:
                    nursery.start_soon(h.collect, node, node.events())
                nursery.start_soon(h.monitor)
                await attack(h)
                h.check()
                await _still_healthy(h)
                h.check()
                nursery.cancel_scope.cancel()

    with _counted_swimpy_log() as log_counts:
        t0 = time.monotonic()
        trio.run(main)  # returns normally: nothing escaped the nodes' tasks
        elapsed = time.monotonic() - t0
    h = out[0]
    assert not log_counts.errors, log_counts.errors
    assert not h.violations, h.violations
    assert not h.member_events, h.member_events[:20]
    assert h.checks >= 20
    growth = h.rss_peak - h.rss_before
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.0f} MiB"
    print(f"\n{attack.__name__}: {elapsed:.1f}s, {h.checks} monitor checks, RSS "
          f"{h.rss_before / 2**20:.0f} -> peak {h.rss_peak / 2**20:.0f} MiB, "
          f"log {dict(log_counts.counts)}")
    return h


async def _still_healthy(h: Harness) -> None:
    """After the attack: probes are answered both ways, a reliable (TCP) message and a
    push/pull reach the victim, and nothing is left in its queues."""
    victim = h.victim
    acks = [n.statistics().counters.get("acks", 0) for n in h.nodes]
    await h.until(lambda: all(n.statistics().counters.get("acks", 0) >= a + 2
                              for n, a in zip(h.nodes, acks, strict=True)),
                  10, "two more acknowledged probes on every node")
    marker = b"still listening after the attack"
    with trio.fail_after(5):
        await h.peers[0].send(NAMES[0], marker, reliable=True)
    await h.until(lambda: marker in h.user_payloads, 5, "the reliable message")
    with trio.fail_after(5):  # a push/pull with the victim
        assert await h.peers[1].join([_addr(victim)]) == 1
    driver = victim._driver
    engine = driver.engine
    await h.until(lambda: not driver.streams._inbound and not engine._net._inbound
                  and not driver._handoff, 5, "the victim's connections and readers to close")
    # nothing that grows per packet or connection is left behind
    assert len(driver._timers) < 1000, len(driver._timers)
    assert len(engine._prober._acks) < 100, len(engine._prober._acks)
    assert len(engine._net._outbound) < 10
    stats = victim.statistics()
    assert stats.suspect == 0 and stats.alive == 3 and stats.members == 3
    assert stats.counters.get("events_dropped", 0) == 0
    assert stats.counters.get("suspicions", 0) == 0
    for peer in h.peers:
        assert peer.statistics().counters.get("suspicions", 0) == 0


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in sorted(after.items())
            if v != before.get(k, 0)}


# ------------------------------------------------------------------------------ UDP


def _readable(sock: socket.socket) -> bool:
    r, _, _ = select.select([sock], [], [], 0)
    return bool(r)


async def udp_flood(h: Harness) -> None:
    victim = h.victim
    udp = victim._driver.sockets.udp
    # a burst fills about a quarter of the victim's receive buffer (counting 1 KiB of
    # kernel overhead per datagram), then the victim drains it before the next: the point
    # is to make it parse every datagram, not to measure the kernel's drops
    budget = max(udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 4, 32 * 1024)
    fuzz = Fuzzer(random.Random(UDP_SEED), UDP_SEEDS + SPECIAL_SEEDS)
    before = dict(victim.statistics().counters)
    sent = skipped = blocked = payload = bursts = 0
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sender, trio.fail_after(60):
        sender.bind(("127.0.0.1", 0))
        sender.setblocking(False)
        pending: bytes | None = None
        while sent < UDP_DATAGRAMS:
            cost = 0
            while sent < UDP_DATAGRAMS and cost < budget:
                if pending is None:
                    pending = fuzz.datagram()
                    if _acts_on_others(pending):
                        skipped += 1
                        pending = None
                        continue
                try:
                    sender.sendto(pending, victim.address)
                except BlockingIOError:
                    blocked += 1
                    break
                sent += 1
                payload += len(pending)
                cost += len(pending) + 1024
                pending = None
            bursts += 1
            await trio.sleep(0)
            while _readable(udp):
                await trio.sleep(0)
        # the last datagrams handled before the counters are read
        while _readable(udp):
            await trio.sleep(0)
        await trio.sleep(0)
    delta = _delta(before, dict(victim.statistics().counters))
    received = delta.get("packets_received", 0)
    dropped = {k: v for k, v in delta.items() if k.startswith("dropped_")}
    print(f"\nUDP: sent {sent} hostile datagrams ({payload / 2**20:.1f} MiB in {bursts} "
          f"bursts, {blocked} sends blocked; {skipped} valid gossip mutants skipped); "
          f"victim packets_received +{received}, dropped {dropped}, "
          f"user messages {len(h.user_payloads)}, other counters "
          f"{ {k: v for k, v in delta.items() if k not in dropped} }")
    # nearly all arrived (the rest of packets_received is the peers' own traffic)
    assert received >= 0.95 * sent, (received, sent)
    assert sum(dropped.values()) >= 0.5 * sent, dropped
    for reason in ("unknown_type", "malformed", "truncated", "truncated_parts", "bad_crc",
                   "decompress", "bad_label", "empty", "wrong_node"):
        assert dropped.get(f"dropped_{reason}", 0) > 0, (reason, dropped)


def test_udp_fuzz_leaves_the_node_healthy() -> None:
    run_against_cluster(udp_flood)


# ------------------------------------------------------------------------------ TCP


@dataclass
class Outcome:
    reply: bytes
    ended: str  # "eof" (the victim closed), "reset" (closed with data unread)
    seconds: float


async def _exchange(dest: tuple[str, int], chunks: list[bytes], *, eof: bool,
                    gap: float = 0.0, deadline: float = 8.0) -> Outcome:
    """Connect, send ``chunks`` (``gap`` seconds apart), half-close if ``eof``, then read
    until the victim closes the connection."""
    t0 = trio.current_time()
    reply = bytearray()
    with trio.fail_after(deadline):
        stream = await trio.open_tcp_stream(*dest)
        async with stream:
            try:
                for i, chunk in enumerate(chunks):
                    if i and gap:
                        await trio.sleep(gap)
                    await stream.send_all(chunk)
                if eof:
                    await stream.send_eof()
                while data := await stream.receive_some(65536):
                    reply += data
            except trio.BrokenResourceError:
                return Outcome(bytes(reply), "reset", trio.current_time() - t0)
    return Outcome(bytes(reply), "eof", trio.current_time() - t0)


def _is_err_reply(reply: bytes) -> bool:
    """The victim answered with memberlist's errResp (possibly compressed)."""
    try:
        msg = parse_stream_untrusted(reply, WireOptions(), expect_label=False)
    except WireError:
        return False
    return isinstance(msg, Err)


def _ping_prefix(length_header: bytes) -> bytes:
    """A TCP ping whose Node string starts with ``length_header`` (a msgpack str header)."""
    return bytes((MessageType.PING,)) + b"\x81\xa4Node" + length_header


#: (name, chunks, half-close, expected end): "error" = answered with an errResp at once;
#: "timeout" = the node waits for the rest and closes the connection after tcp_timeout
STALLS: list[tuple[str, list[bytes], bool, str]] = [
    ("encrypted frame announcing 2^31 bytes", [b"\x0a" + struct.pack(">I", 2**31)],
     False, "error"),
    ("encrypted frame announcing 2^32-1 bytes, closed", [b"\x0a\xff\xff\xff\xff"],
     True, "error"),
    ("encrypted frame of the maximum size, stalled",
     [b"\x0a" + struct.pack(">I", MAX_PUSH_STATE_BYTES), bytes(1000)], False, "timeout"),
    ("encrypted frame of 1 MiB of garbage",
     [b"\x0a" + struct.pack(">I", 2**20), random.Random(1).randbytes(2**20)], False, "error"),
    ("encrypted frame cut short", [b"\x0a" + struct.pack(">I", 4096), bytes(100)],
     True, "error"),
    ("push/pull msgpack map header announcing 2^31 entries",
     [b"\x06\xdf\x80\x00\x00\x00"], False, "error"),
    ("push/pull header announcing 2^31 nodes",
     [b"\x06" + encode_body(PushPullHeader(2**31, 0, False))], False, "error"),
    ("push/pull header announcing 2^31 bytes of user state",
     [b"\x06" + encode_body(PushPullHeader(1, 2**31, True))], False, "error"),
    ("push/pull header announcing 10^6 nodes, stalled",
     [b"\x06" + encode_body(PushPullHeader(1_000_000, 0, False))], False, "timeout"),
    ("user message announcing 2^31 bytes",
     [b"\x08" + encode_body(UserMsgHeader(2**31))], False, "error"),
    ("user message announcing the maximum size, stalled",
     [b"\x08" + encode_body(UserMsgHeader(MAX_USER_MSG_BYTES)), bytes(10)], False, "timeout"),
    ("user message announcing the maximum size, closed",
     [b"\x08" + encode_body(UserMsgHeader(MAX_USER_MSG_BYTES)), bytes(10)], True, "error"),
    # msgpack checks a str's length once all of it is buffered: the node waits (bounded
    # by tcp_timeout and MAX_INBOUND_BYTES) instead of refusing the header at once
    ("ping whose node name announces 2^31 bytes, stalled",
     [_ping_prefix(b"\xdb\x80\x00\x00\x00")], False, "timeout"),
    ("ping whose node name announces 30 MiB, stalled",
     [_ping_prefix(b"\xdb" + struct.pack(">I", 30 * 2**20)), b"x" * 100], False, "timeout"),
    ("ping nested 100,000 arrays deep", [b"\x00" + b"\x91" * 100_000], False, "error"),
    ("array32 of 2^31 entries", [b"\x00\xdd\x80\x00\x00\x00"], False, "error"),
    ("decompression bomb (50 MB of zeros in 25 KB)",
     [encode_message(Compress(0, _zero_bomb(13_100)))], False, "error"),
    ("compressed twice",
     [compress_payload(compress_payload(encode_message(Ping(1, "x"))))], False, "error"),
    ("unknown message type", [b"\x42" + bytes(64)], False, "error"),
    ("zero-length label header", [b"\xf4\x00\x00"], False, "error"),
    ("foreign label", [add_label_header(encode_message(Ping(1, "x")), b"other")],
     False, "error"),
    ("label header announcing 255 bytes, stalled", [b"\xf4\xff" + b"l" * 10], False, "timeout"),
    ("nothing, half-closed", [], True, "error"),
    ("slowloris: a ping one byte every 0.3 s",
     [bytes((b,)) for b in encode_message(Ping(1, "victim"))], False, "timeout"),
]


async def _flood_stream(h: Harness) -> Outcome:
    """A ping whose node name announces 30 MiB, then 21 MiB: more than any stream may be."""
    prefix = _ping_prefix(b"\xdb" + struct.pack(">I", 30 * 2**20))
    chunk = b"z" * 2**20
    return await _exchange(h.victim.address, [prefix, *([chunk] * 21)], eof=False)


async def _stalls(h: Harness) -> None:
    tcp_timeout = h.victim.config.tcp_timeout
    results: dict[str, Outcome] = {}

    async def one(name: str, chunks: list[bytes], eof: bool) -> None:
        gap = 0.3 if name.startswith("slowloris") else 0.0
        results[name] = await _exchange(h.victim.address, chunks, eof=eof, gap=gap)

    async with trio.open_nursery() as nursery:
        for name, chunks, eof, _ in STALLS:
            nursery.start_soon(one, name, chunks, eof)

    async def flood() -> None:
        results["21 MiB flood"] = await _flood_stream(h)

    await flood()
    for name, _, _, expect in STALLS:
        r = results[name]
        if expect == "error":
            assert _is_err_reply(r.reply), (name, r)
            assert r.seconds < tcp_timeout, (name, r)
        else:
            assert r.reply == b"" and r.seconds >= 0.9 * tcp_timeout, (name, r)
    assert results["21 MiB flood"].ended == "reset" or _is_err_reply(
        results["21 MiB flood"].reply), results["21 MiB flood"]


async def _mutated_streams(h: Harness, count: int) -> tuple[int, int, Counter[str]]:
    """Mutants of the golden streams and random garbage, half-closed; the victim must
    close every one of them well within tcp_timeout."""
    rng = random.Random(TCP_SEED)
    fuzz = Fuzzer(rng, TCP_SEEDS + SPECIAL_SEEDS)
    limiter = trio.CapacityLimiter(32)
    ends: Counter[str] = Counter()
    skipped = garbage = 0
    work: list[bytes] = []
    while len(work) < count:
        if rng.random() < 0.2:
            data = rng.randbytes(_loglen(rng, 256 * 1024))
            garbage += 1
        else:
            data = fuzz.mutant()
            if rng.random() < 0.2:  # a valid encrypted frame around the mutant
                data = frame_stream(data, WireOptions(keyring=Keyring([KEY16]),
                                                      compression=False),
                                    nonce_source=rng.randbytes)
        if _stream_acts_on_others(data):
            skipped += 1
            continue
        work.append(data)

    async def one(data: bytes) -> None:
        async with limiter:
            r = await _exchange(h.victim.address, [data], eof=True, deadline=5)
            ends[r.ended] += 1
            ends["err reply" if _is_err_reply(r.reply) else "other reply"] += 1

    async with trio.open_nursery() as nursery:
        for data in work:
            nursery.start_soon(one, data)
    return skipped, garbage, ends


async def _idle_connections(h: Harness) -> tuple[int, float]:
    """Open IDLE_CONNECTIONS connections and send nothing; all must be closed by the
    victim: the ones over the cap at once, the others after tcp_timeout."""
    host, port = h.victim.address
    socks: list[trio.socket.SocketType] = []
    closed_at: list[float] = []
    t0 = trio.current_time()
    try:
        with trio.fail_after(10):
            for _ in range(IDLE_CONNECTIONS):
                s = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                await s.connect((host, port))
            opened = trio.current_time() - t0

            async def wait_closed(s: trio.socket.SocketType) -> None:
                try:
                    while await s.recv(4096):
                        pass
                except OSError:  # reset
                    pass
                closed_at.append(trio.current_time() - t0)

            async with trio.open_nursery() as nursery:
                for s in socks:
                    nursery.start_soon(wait_closed, s)
    finally:
        for s in socks:
            s.close()
    assert len(closed_at) == IDLE_CONNECTIONS
    return sum(1 for t in closed_at if t < h.victim.config.tcp_timeout * 0.8), opened


async def tcp_abuse(h: Harness) -> None:
    victim = h.victim
    before = dict(victim.statistics().counters)
    t0 = trio.current_time()
    await _stalls(h)
    skipped, garbage, ends = await _mutated_streams(h, 400)
    mid = dict(victim.statistics().counters)
    quick, opened = await _idle_connections(h)
    after = dict(victim.statistics().counters)
    idle = _delta(mid, after)
    delta = _delta(before, after)
    dropped = {k: v for k, v in delta.items() if k.startswith("dropped_")}
    print(f"\nTCP: {len(STALLS) + 1} crafted streams, 400 mutated/garbage streams "
          f"({garbage} garbage, {skipped} valid push/pulls skipped, ends {dict(ends)}), "
          f"{IDLE_CONNECTIONS} idle connections opened in {opened:.2f}s ({quick} closed "
          f"at once); {trio.current_time() - t0:.1f}s; victim dropped {dropped}, "
          f"counters {({k: v for k, v in delta.items() if k not in dropped})}")
    refused = idle.get("inbound_refused", 0)
    assert refused >= IDLE_CONNECTIONS - MAX_INBOUND_CONNECTIONS, idle
    assert quick >= IDLE_CONNECTIONS - MAX_INBOUND_CONNECTIONS, (quick, idle)
    assert idle.get("inbound_timeouts", 0) >= IDLE_CONNECTIONS - refused, idle
    stalled = sum(1 for *_, expect in STALLS if expect == "timeout")
    assert delta.get("inbound_timeouts", 0) >= stalled + IDLE_CONNECTIONS - refused, delta
    for reason in ("oversized", "malformed", "decrypt", "decompress", "unknown_type",
                   "bad_label", "truncated", "empty", "stream_incomplete"):
        assert dropped.get(f"dropped_{reason}", 0) > 0, (reason, dropped)
    assert delta.get("handoff_dropped", 0) == 0, delta


def test_tcp_abuse_leaves_the_node_healthy() -> None:
    run_against_cluster(tcp_abuse)
