"""The agent: one or two pools (LAN, and WAN with a datacenter), the control API, event
handlers, the snapshot and the keyring file, until SIGINT/SIGTERM; then a graceful leave.

This differs from ``serf agent``, which leaves gracefully only on SIGINT by default
(``leave_on_terminate`` is off there): a swimpy agent stopped by its service manager
(SIGTERM) leaves too, so the others see ``left`` rather than ``failed``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping
from typing import Any

import trio

import swimpy
from swimpy.agent import http
from swimpy.agent.events import EventHandlers, log_event
from swimpy.agent.logs import LogBroadcaster
from swimpy.agent.metrics import RttHistogram, SwimpyCollector, render
from swimpy.agent.settings import AgentSettings, SettingsError, decode_key, split_host_port
from swimpy.agent.snapshot import Snapshot
from swimpy.core.member import Member, State
from swimpy.runtime.node import JoinError, Node, open_node

log = logging.getLogger("swimpy.agent")

#: how long a graceful leave may take before the agent stops anyway
LEAVE_TIMEOUT = 5.0


class AgentError(Exception):
    """A start-up problem a person can act on (one line, no traceback)."""


def member_json(m: Member) -> dict[str, Any]:
    """swimpy's documented member object (``members --json``, ``/v1/agent/members``)."""
    status = {State.ALIVE: "alive", State.SUSPECT: "suspect", State.DEAD: "dead",
              State.LEFT: "left"}[m.state]
    return {"name": m.name, "addr": m.addr, "port": m.port, "status": status,
            "tags": dict(m.tags), "incarnation": m.incarnation,
            "meta_b64": base64.b64encode(m.meta).decode()}


class Agent:
    def __init__(self, settings: AgentSettings, logs: LogBroadcaster | None = None) -> None:
        self.settings = settings
        self.logs = logs or LogBroadcaster()
        self.pools: dict[str, Node] = {}
        self.tags: dict[str, str] = dict(settings.tags)
        self._stop = trio.Event()
        self._keyring_path = settings.keyring_file
        self._snapshot: Snapshot | None = None
        self._join_scope: trio.CancelScope | None = None
        self.histograms: dict[str, RttHistogram] = {}
        # one collector for the agent's life: it keeps counters monotonic across scrapes
        self._collector = SwimpyCollector(lambda: _MetricsPools(self))

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[Agent] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        s = self.settings
        try:
            keys = self._initial_keys()
        except SettingsError as exc:
            raise AgentError(str(exc)) from None
        lan_cfg = s.lan_config()
        if keys:
            lan_cfg = lan_cfg.replace(secret_keys=tuple(keys))
        wan_cfg = s.wan_config()
        if wan_cfg is not None and keys:
            wan_cfg = wan_cfg.replace(secret_keys=tuple(keys))
        rpc_host, rpc_port = split_host_port(s.rpc_addr, "rpc_addr", s.source)
        try:
            async with open_node(lan_cfg, tags=self.tags) as lan:
                self.pools["lan"] = lan
                if wan_cfg is None:
                    await self._serve(rpc_host, rpc_port or 8400, task_status)
                else:
                    async with open_node(wan_cfg, tags=self.tags) as wan:
                        self.pools["wan"] = wan
                        await self._serve(rpc_host, rpc_port or 8400, task_status)
        except OSError as exc:
            raise AgentError(str(exc)) from None

    async def _serve(self, rpc_host: str, rpc_port: int,
                     task_status: trio.TaskStatus[Agent]) -> None:
        s = self.settings
        for name, node in self.pools.items():
            hist = RttHistogram()
            self.histograms[name] = hist
            node.observe_probe_rtt(hist.observe)
        lan = self.pools["lan"]
        snapshot = Snapshot(s.snapshot_path) if s.snapshot_path else None
        self._snapshot = snapshot
        handlers = EventHandlers(s.event_handlers, lan.name, lambda: self.tags)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._signals)
            for name, node in self.pools.items():
                nursery.start_soon(self._watch, name, node, handlers, snapshot)
            if s.event_handlers:
                nursery.start_soon(handlers.run)
            if snapshot is not None:
                nursery.start_soon(snapshot.run)
            try:
                await nursery.start(http.serve, self.handle, rpc_host, rpc_port)
            except OSError as exc:
                raise AgentError(f"control API: cannot listen on {s.rpc_addr}: "
                                 f"{exc.strerror or exc}") from None
            log.info("agent: %s running; control API on %s", lan.name, s.rpc_addr)
            if not http.is_loopback(rpc_host) and rpc_host != "localhost":
                log.warning("agent: the control API on %s has no authentication: anyone "
                            "who can reach it can make this agent leave or change its keys",
                            s.rpc_addr)
            # a signal during a slow start-up join leaves and stops at once
            with trio.CancelScope() as self._join_scope:
                await self._initial_joins(nursery, snapshot)
            task_status.started(self)
            await self._stop.wait()
            if snapshot is not None:
                snapshot.flush()
            nursery.cancel_scope.cancel()

    async def _initial_joins(self, nursery: trio.Nursery, snapshot: Snapshot | None) -> None:
        s = self.settings
        lan = self.pools["lan"]
        if s.start_join:
            try:
                n = await lan.join(s.start_join)
            except JoinError as exc:
                raise AgentError(f"join failed: {exc}") from None
            log.info("agent: joined %d nodes", n)
        if s.wan_join:
            try:
                await self.pools["wan"].join(s.wan_join)
            except JoinError as exc:
                raise AgentError(f"WAN join failed: {exc}") from None
        if s.retry_join:
            nursery.start_soon(self._retry_join, s.retry_join)
        if snapshot is not None:
            known = snapshot.rejoin_addresses(exclude=lan.name)
            if known:
                nursery.start_soon(self._rejoin_snapshot, known)

    async def _retry_join(self, addrs: tuple[str, ...]) -> None:
        s = self.settings
        try:
            n = await self.pools["lan"].join(addrs, retry_interval=s.retry_interval,
                                             retry_max=s.retry_max)
            log.info("agent: retry-join contacted %d nodes", n)
        except JoinError as exc:
            log.error("agent: retry-join gave up, exiting: %s", exc)
            self.exit_code = 1
            self._stop.set()

    async def _rejoin_snapshot(self, addrs: list[str]) -> None:
        try:
            n = await self.pools["lan"].join(addrs)
            log.info("agent: rejoined %d known nodes from the snapshot", n)
        except JoinError as exc:
            log.warning("agent: no node from the snapshot answered: %s", exc)

    async def _watch(self, pool: str, node: Node, handlers: EventHandlers,
                     snapshot: Snapshot | None) -> None:
        async for event in node.events():
            if isinstance(event, swimpy.MemberEvent):
                log_event(pool, event)
                if pool == "lan":
                    handlers.submit(event)
                    if snapshot is not None:
                        snapshot.record(node.all_members())

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    # serf reloads its configuration on SIGHUP; swimpy cannot yet, but a
                    # closed terminal must not kill the member without a leave
                    log.warning("agent: caught SIGHUP; reloading the configuration is not "
                                "supported, carrying on")
                    continue
                log.info("agent: caught %s, leaving the cluster",
                         signal.Signals(signum).name)
                await self.leave()
                return

    exit_code = 0

    async def leave(self, stop: bool = True) -> None:
        """Leave every pool gracefully, then stop (unless ``stop`` is False)."""
        if self._join_scope is not None:
            self._join_scope.cancel()
        with trio.move_on_after(LEAVE_TIMEOUT + 1):
            for name, node in self.pools.items():
                try:
                    await node.leave(LEAVE_TIMEOUT)
                    log.info("agent: left the %s pool", name)
                except Exception as exc:  # leaving is best effort; stopping is not
                    log.warning("agent: leaving the %s pool failed: %s", name, exc)
        if self._snapshot is not None:
            self._snapshot.mark_left()
        if stop:
            self._stop.set()

    # ------------------------------------------------------------------ keys

    def _initial_keys(self) -> list[bytes]:
        s = self.settings
        path = self._keyring_path
        if path and os.path.exists(path):
            keys = read_keyring_file(path)
            if s.encrypt_key is not None and s.encrypt_key not in keys:
                log.warning("agent: %s exists, so --encrypt is ignored (install the key "
                            "with 'swimpy keys --install' instead)", path)
            return keys
        keys = [s.encrypt_key] if s.encrypt_key is not None else []
        if path and keys:
            write_keyring_file(path, keys)
        return keys

    def _save_keys(self) -> None:
        if self._keyring_path:
            write_keyring_file(self._keyring_path, self.pools["lan"].keyring.list())

    # ------------------------------------------------------------------ the API

    async def handle(self, req: http.Request) -> http.Response:
        route = (req.method, req.path)
        if route == ("GET", "/v1/agent/members"):
            return http.Response.json(self.members_json(req.arg("wan") in ("1", "true")))
        if route == ("GET", "/v1/agent/self"):
            return http.Response.json(self.self_json())
        if route == ("PUT", "/v1/agent/join"):
            return await self._api_join(req)
        if route == ("PUT", "/v1/agent/leave"):
            await self.leave(stop=False)
            response = http.Response.json({"left": True})
            response.after = self._stop.set  # stop once the caller has its answer
            return response
        if route == ("GET", "/v1/agent/keyring"):
            return http.Response.json(self.keys_json())
        if route == ("PUT", "/v1/agent/keyring/verify"):
            return self._api_verify(req)
        if req.method == "PUT" and req.path.startswith("/v1/agent/keyring/"):
            return self._api_key(req, req.path.rsplit("/", 1)[1])
        if route == ("GET", "/v1/agent/tags"):
            return http.Response.json({"tags": self.tags})
        if route == ("PUT", "/v1/agent/tags"):
            return await self._api_tags(req)
        if route == ("GET", "/v1/agent/monitor"):
            return self._api_monitor(req)
        if route == ("GET", "/metrics"):
            return self._api_metrics()
        known = {"/v1/agent/members", "/v1/agent/self", "/v1/agent/join", "/v1/agent/leave",
                 "/v1/agent/keyring", "/v1/agent/tags", "/v1/agent/monitor", "/metrics"}
        if req.path in known or req.path.startswith("/v1/agent/keyring/"):
            raise http.HttpError(405, f"{req.method} is not allowed on {req.path}")
        raise http.HttpError(404, f"no such endpoint: {req.path}")

    def members_json(self, wan: bool = False) -> list[dict[str, Any]]:
        pool = self.pools.get("wan" if wan else "lan")
        if pool is None:
            raise http.HttpError(400, "this agent has no WAN pool (start it with --dc)")
        return [member_json(m) for m in pool.all_members()]

    def self_json(self) -> dict[str, Any]:
        lan = self.pools["lan"]
        me = lan.member(lan.name)
        out: dict[str, Any] = {
            "member": member_json(me) if me is not None else None,
            "profile": lan.config.profile,
            "address": f"{lan.address[0]}:{lan.address[1]}",
            "rpc_addr": self.settings.rpc_addr,
            "version": swimpy.__version__,
            "encrypted": bool(lan.keyring.list()),
            "pools": {},
        }
        for name, node in self.pools.items():
            stats = node.statistics()
            out["pools"][name] = {"name": node.name, "profile": node.config.profile,
                                  "address": f"{node.address[0]}:{node.address[1]}",
                                  "statistics": stats.as_dict()}
        out["statistics"] = out["pools"]["lan"]["statistics"]
        return out

    def keys_json(self) -> dict[str, Any]:
        keyring = self.pools["lan"].keyring
        keys = keyring.list()
        incoming, outgoing = keyring.verify
        return {"keys": [base64.b64encode(k).decode() for k in keys],
                "primary": base64.b64encode(keys[0]).decode() if keys else None,
                "verify_incoming": incoming, "verify_outgoing": outgoing}

    def _api_verify(self, req: http.Request) -> http.Response:
        body = req.json()
        if not isinstance(body, dict) or not all(
                isinstance(body.get(k), bool) for k in ("incoming", "outgoing")):
            raise http.HttpError(400, 'expected {"incoming": true|false, "outgoing": true|false}')
        for node in self.pools.values():
            node.keyring.set_verify(incoming=body["incoming"], outgoing=body["outgoing"])
        log.info("agent: gossip verification set to incoming=%s outgoing=%s",
                 body["incoming"], body["outgoing"])
        return http.Response.json(self.keys_json())

    async def _api_join(self, req: http.Request) -> http.Response:
        body = req.json()
        addrs = body.get("addresses") if isinstance(body, dict) else None
        if not isinstance(addrs, list) or not addrs or not all(isinstance(a, str) for a in addrs):
            raise http.HttpError(400, 'expected {"addresses": ["host:port", ...]}')
        pool = self.pools.get("wan" if body.get("wan") else "lan")
        if pool is None:
            raise http.HttpError(400, "this agent has no WAN pool (start it with --dc)")
        try:
            n = await pool.join(addrs)
        except ValueError as exc:
            raise http.HttpError(400, str(exc)) from None
        except JoinError as exc:
            raise http.HttpError(502, str(exc)) from None
        return http.Response.json({"contacted": n})

    def _api_key(self, req: http.Request, op: str) -> http.Response:
        if op not in ("install", "use", "remove"):
            raise http.HttpError(404, f"no such keyring operation: {op}")
        body = req.json()
        text = body.get("key") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise http.HttpError(400, 'expected {"key": "BASE64"}')
        try:
            key = decode_key(text, "key", "")
        except SettingsError as exc:
            raise http.HttpError(400, str(exc).removeprefix("key: ")) from None
        try:
            for node in self.pools.values():
                getattr(node.keyring, op)(key)
        except ValueError as exc:
            raise http.HttpError(400, str(exc)) from None
        self._save_keys()
        log.info("agent: keyring %s done", op)
        return http.Response.json(self.keys_json())

    async def _api_tags(self, req: http.Request) -> http.Response:
        body = req.json()
        if not isinstance(body, dict):
            raise http.HttpError(400, 'expected {"set": {...}, "delete": [...]}')
        new = dict(self.tags)
        to_set = body.get("set") or {}
        to_delete = body.get("delete") or []
        if not isinstance(to_set, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in to_set.items()):
            raise http.HttpError(400, '"set" is an object of strings')
        if not isinstance(to_delete, list) or not all(isinstance(k, str) for k in to_delete):
            raise http.HttpError(400, '"delete" is a list of tag names')
        new.update(to_set)
        for k in to_delete:
            new.pop(k, None)
        old, self.tags = self.tags, new  # event handlers for our own update see the new tags
        try:
            for node in self.pools.values():
                await node.update_tags(new)
        except ValueError as exc:
            self.tags = old
            raise http.HttpError(400, str(exc)) from None
        return http.Response.json({"tags": new})

    def _api_monitor(self, req: http.Request) -> http.Response:
        level = req.arg("log_level", "info")
        try:
            sub = self.logs.subscribe(level)
        except ValueError as exc:
            raise http.HttpError(400, str(exc)) from None

        async def lines() -> AsyncIterator[bytes]:
            try:
                async for line in sub:
                    yield line.encode() + b"\n"
            finally:
                sub.close()

        return http.Response(200, b"", content_type="text/plain; charset=utf-8", stream=lines())

    def _api_metrics(self) -> http.Response:
        body, ctype = render(self._collector)
        return http.Response(200, body, content_type=ctype)


class _MetricsPools(Mapping[str, Any]):
    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def __getitem__(self, key: str) -> Any:
        return _PoolSource(self._agent.pools[key], self._agent.histograms[key])

    def __iter__(self) -> Any:
        return iter(self._agent.pools)

    def __len__(self) -> int:
        return len(self._agent.pools)


class _PoolSource:
    def __init__(self, node: Node, hist: Any) -> None:
        self._node = node
        self._hist = hist

    def statistics(self) -> Any:
        return self._node.statistics()

    def rtt_histogram(self) -> Any:
        return self._hist.snapshot()


def read_keyring_file(path: str) -> list[bytes]:
    """Serf's keyring file: a JSON array of base64 keys, the primary first."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise SettingsError(path, "", f"cannot read the keyring file: {exc}") from None
    if not isinstance(data, list) or not data or not all(isinstance(k, str) for k in data):
        raise SettingsError(path, "", "a keyring file is a JSON array of base64 keys")
    return [decode_key(k, path, f"[{i}]") for i, k in enumerate(data)]


def write_keyring_file(path: str, keys: list[bytes]) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump([base64.b64encode(k).decode() for k in keys], f)
    os.replace(tmp, path)
