"""``swimpy.open_node``: a member of one pool on real sockets, inside a trio program.

::

    async with swimpy.open_node(profiles.lan(name="web-1"), tags={"role": "web"}) as node:
        await node.join(["10.0.0.5:8301"])
        async for event in node.events():
            print(event.kind, event.member.name)

Leaving the ``async with`` block shuts the node down without leaving: peers see it fail,
as after a crash. Call :meth:`Node.leave` first for a graceful exit.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager

import trio

from swimpy.core.actions import (
    JoinCompleted,
    RequestFailed,
    UserMessageSent,
)
from swimpy.core.engine import Engine
from swimpy.core.inputs import (
    BroadcastRequested,
    JoinRequested,
    LeaveRequested,
    MetaUpdateRequested,
    UserMessageRequested,
)
from swimpy.core.member import Address, Member, encode_serf_tags
from swimpy.core.snapshot import Membership, Statistics
from swimpy.profiles import Config, ConfigError
from swimpy.runtime import sockets
from swimpy.runtime.driver import Driver, NodeClosed
from swimpy.runtime.events import DEFAULT_EVENT_BUFFER, EventHub, Subscription
from swimpy.runtime.keyring import Keyring
from swimpy.runtime.seeds import Seed, parse_seed, resolve

log = logging.getLogger("swimpy.runtime")


class JoinError(Exception):
    """No seed answered a join. ``errors`` holds one line per address: why it failed."""

    def __init__(self, errors: list[str], attempts: int = 1) -> None:
        self.errors = list(errors)
        self.attempts = attempts
        tried = f" ({attempts} attempts)" if attempts > 1 else ""
        lines = "; ".join(errors) if errors else "no addresses"
        super().__init__(f"could not join any seed{tried}: {lines}")


def node_meta(tags: Mapping[str, str] | None, meta: bytes | None) -> bytes:
    """The node metadata for ``tags`` (Serf's encoding) or raw ``meta``; both is an error."""
    if tags is not None and meta is not None:
        raise ValueError("pass tags or meta, not both (tags are encoded into the metadata)")
    if tags is not None:
        for k, v in tags.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"tags are str -> str; got {k!r}: {v!r}")
        return encode_serf_tags(tags)
    return bytes(meta or b"")


class Node:
    """A running member (the handle :func:`open_node` yields). Queries never block and may
    be called from any thread; the ``async`` methods belong to the node's trio run."""

    def __init__(self, driver: Driver, advertise: Address) -> None:
        self._driver = driver
        self._engine = driver.engine
        self.config: Config = driver.config
        self.name: str = driver.config.name
        self.address: Address = advertise
        self.keyring = Keyring(driver)
        self._rejoin_scope: trio.CancelScope | None = None

    # ------------------------------------------------------------------ queries

    def members(self) -> list[Member]:
        """Alive and suspect members, self included."""
        return self._membership().members()

    def member(self, name: str) -> Member | None:
        """The table's record of ``name`` (any state), or None."""
        return self._membership().member(name)

    def all_members(self) -> list[Member]:
        """Every member, with failed and left members still retained (Serf's view)."""
        return self._membership().all_members()

    def statistics(self) -> Statistics:
        """Gauges and counters: the engine's, and the runtime's own (``events_dropped``,
        ``handoff_dropped``, ``udp_send_errors``, ``inbound_refused``, ...)."""
        d = self._driver
        if d.on_owner_thread() and not d.closed:
            d.publish()
        return d.stats

    @property
    def tags(self) -> Mapping[str, str]:
        me = self.member(self.name)
        return me.tags if me is not None else {}

    @property
    def closed(self) -> bool:
        return self._driver.closed

    def _membership(self) -> Membership:
        d = self._driver
        if d.on_owner_thread() and not d.closed:
            d.membership = self._engine.snapshot()
        return d.membership

    def observe_probe_rtt(self, observer: Callable[[float], None] | None) -> None:
        """Call ``observer(seconds)`` with the round-trip time of every probe answered
        directly (on the node's thread; it must not block). None stops it."""
        self._driver.rtt_observer = observer

    # ------------------------------------------------------------------ events

    def events(self, *, buffer: int = DEFAULT_EVENT_BUFFER) -> Subscription:
        """Member events and user messages from now on, on a buffer of ``buffer`` events
        (the oldest are dropped and counted when this subscriber falls behind)."""
        return self._driver.hub.subscribe(buffer)

    # ------------------------------------------------------------------ joining

    async def join(self, addresses: Iterable[str], *, retry_interval: float | None = None,
                   retry_max: int = 0, rejoin_interval: float | None = None) -> int:
        """Join through the seeds; returns how many answered.

        ``retry_interval`` makes it Serf's retry-join: try again at that interval until
        one attempt succeeds (``retry_max`` > 0 bounds the attempts). ``rejoin_interval``
        keeps joining the seeds at that interval after success, in the background, which
        heals partitions that outlast the reconnect timeout. Names are resolved at every
        attempt. Raises :class:`JoinError` when no seed answered (the last attempt's
        reasons, one per address) and ``ValueError`` for addresses that are not addresses.
        """
        seeds = [parse_seed(a, self.config.bind_port) for a in _as_list(addresses)]
        if not seeds:
            raise ValueError("join needs at least one address")
        if retry_interval is not None and retry_interval <= 0:
            raise ValueError(f"retry_interval must be positive, not {retry_interval!r}")
        if retry_max < 0:
            raise ValueError(f"retry_max must be 0 (forever) or more, not {retry_max!r}")
        if rejoin_interval is not None and rejoin_interval <= 0:
            raise ValueError(f"rejoin_interval must be positive, not {rejoin_interval!r}")
        attempt = 0
        while True:
            attempt += 1
            try:
                contacted = await self._join_once(seeds)
            except JoinError as exc:
                if retry_interval is None or (retry_max and attempt >= retry_max):
                    raise JoinError(exc.errors, attempt) from None
                log.warning("%s: join attempt %d failed, retrying in %gs: %s",
                            self.name, attempt, retry_interval, exc)
                await trio.sleep(retry_interval)
                continue
            break
        if rejoin_interval is not None:
            self._start_rejoin(seeds, rejoin_interval)
        return contacted

    async def _join_once(self, seeds: list[Seed]) -> int:
        errors: list[str] = []
        targets: list[Address] = []
        for seed in seeds:
            try:
                for addr in await resolve(seed, self._driver.sockets.family):
                    if addr not in targets:
                        targets.append(addr)
            except OSError as exc:
                errors.append(str(exc))
        if targets:
            done = await self._driver.call(JoinRequested(tuple(targets)))
            if isinstance(done, RequestFailed):
                errors.append(done.reason)
            elif isinstance(done, JoinCompleted):
                errors.extend(done.errors)
                if done.contacted:
                    self._driver.publish()
                    log.info("%s: joined through %d of %d seed addresses", self.name,
                             done.contacted, len(targets))
                    return done.contacted
        raise JoinError(errors)

    def _start_rejoin(self, seeds: list[Seed], interval: float) -> None:
        if self._rejoin_scope is not None:
            self._rejoin_scope.cancel()
        scope = trio.CancelScope()
        self._rejoin_scope = scope

        async def rejoin() -> None:
            with scope:
                while True:
                    await trio.sleep(interval)
                    try:
                        await self._join_once(seeds)
                    except JoinError as exc:
                        log.info("%s: periodic rejoin failed: %s", self.name, exc)
                    except NodeClosed:
                        return

        self._driver.nursery.start_soon(rejoin)

    # ------------------------------------------------------------------ other requests

    async def leave(self, timeout: float = 5.0) -> None:
        """Leave gracefully: broadcast that we leave and wait until it was sent to enough
        peers (or ``timeout``). Peers mark us ``left``; close the node afterwards."""
        if self._rejoin_scope is not None:
            self._rejoin_scope.cancel()
        await self._driver.call(LeaveRequested(timeout))
        self._driver.publish()

    async def update_tags(self, tags: Mapping[str, str], timeout: float = 5.0) -> None:
        """Replace our Serf tags (all of them) and broadcast the change."""
        await self.update_meta(node_meta(tags, None), timeout)

    async def update_meta(self, meta: bytes, timeout: float = 5.0) -> None:
        """Replace our raw metadata and broadcast it with a higher incarnation."""
        done = await self._driver.call(MetaUpdateRequested(bytes(meta), timeout))
        if isinstance(done, RequestFailed):
            raise RuntimeError(done.reason)
        self._driver.publish()

    async def send(self, name: str, payload: bytes, *, reliable: bool = False) -> None:
        """Send a user message to member ``name``: a UDP datagram, or over TCP when
        ``reliable``. Raises ``KeyError`` for an unknown member, ``OSError`` when a
        reliable message could not be delivered."""
        done = await self._driver.call(UserMessageRequested(name, bytes(payload), reliable))
        if isinstance(done, RequestFailed):
            raise KeyError(done.reason)
        if isinstance(done, UserMessageSent) and done.error is not None:
            raise OSError(f"message to {name!r} not delivered: {done.error}")

    def broadcast(self, payload: bytes) -> None:
        """Gossip ``payload`` to every member (piggybacked, best effort)."""
        self._driver.submit_nowait(BroadcastRequested(bytes(payload)))


def _as_list(addresses: Iterable[str]) -> list[str]:
    if isinstance(addresses, str):
        return [addresses]
    return list(addresses)


@asynccontextmanager
async def open_node(config: Config, *, tags: Mapping[str, str] | None = None,
                    meta: bytes | None = None, delegate: object | None = None,
                    rng: random.Random | None = None) -> AsyncIterator[Node]:
    """Bind UDP and TCP on ``config.bind_addr``/``bind_port``, start the engine and yield
    the :class:`Node`. On exit the node stops without leaving.

    ``tags`` become Serf-encoded metadata (``serf members`` shows them); ``meta`` is raw
    metadata instead. Raises :class:`ConfigError` for a bad configuration and
    ``OSError`` (naming the address) when the port cannot be bound.
    """
    if not isinstance(config, Config):
        raise TypeError(f"open_node takes a swimpy Config, not {type(config).__name__}")
    if not config.name:
        raise ConfigError("name", "the node needs a name (set Config.name)")
    node_metadata = node_meta(tags, meta)
    socks = await sockets.bind(config)
    try:
        advertise = sockets.advertise_address(config, socks.port)
        engine = Engine(config, advertise=advertise,
                        rng=rng or random.Random(int.from_bytes(os.urandom(8), "big")),
                        nonce_source=os.urandom, meta=node_metadata, delegate=delegate)
        hub = EventHub()
        # An exception from the caller's block is re-raised as itself after our nursery
        # closed, not wrapped in the nursery's ExceptionGroup.
        raised: BaseException | None = None
        async with trio.open_nursery() as nursery:
            driver = Driver(engine, socks, hub, nursery)
            driver.start()
            nursery.start_soon(driver.run)
            nursery.start_soon(driver.streams.accept_loop, socks.tcp)
            node = Node(driver, advertise)
            log.info("%s: listening on %s (UDP and TCP), advertising %s:%d", config.name,
                     _show(socks), advertise[0], advertise[1])
            try:
                yield node
            except BaseException as exc:
                raised = exc
            finally:
                driver.close()
                nursery.cancel_scope.cancel()
        if raised is not None:
            raise raised
    finally:
        socks.close()


def _show(socks: sockets.Sockets) -> str:
    host = str(socks.udp.getsockname()[0])
    return f"[{host}]:{socks.port}" if ":" in host else f"{host}:{socks.port}"
