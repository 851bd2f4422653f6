"""A small HTTP/1.1 server on trio with h11, for the agent's control API.

h11 does the protocol (parsing, framing, keep-alive, chunked streaming); this module only
moves bytes between it and a trio stream and hands each request to a handler. Requests
from other hosts are refused unless the server was bound to a non-loopback address on
purpose; bodies are capped; every handler error becomes a JSON 500, never a crash.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import trio

log = logging.getLogger("swimpy.agent")

#: the largest request body accepted (join lists, keys, tags)
MAX_BODY = 1024 * 1024
#: a connection that sends nothing for this long is closed
IDLE_TIMEOUT = 30.0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    client: str

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"the body is not JSON: {exc}") from None

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    #: a streamed body (chunked): yields chunks until the client goes away
    stream: AsyncIterator[bytes] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: called once the response was sent (or could not be), e.g. to stop the server
    after: Callable[[], None] | None = None

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(value, indent=2, sort_keys=True).encode() + b"\n")


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[[Request], Awaitable[Response]]


def is_loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


async def serve(handler: Handler, host: str, port: int, *,
                task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED
                ) -> None:
    """Serve until cancelled; reports the listeners once bound (``OSError`` if not)."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    local_only = is_loopback(host) or host == "localhost"

    async def connection(stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()
            client = str(peer[0])
        except OSError:
            return
        if local_only and not is_loopback(client):
            log.warning("control API: refused a connection from %s (loopback only)", client)
            await trio.aclose_forcefully(stream)
            return
        try:
            await _Connection(stream, handler, client).run()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    task_status.started(listeners)
    await trio.serve_listeners(connection, listeners)


class _Connection:
    def __init__(self, stream: trio.SocketStream, handler: Handler, client: str) -> None:
        self.stream = stream
        self.handler = handler
        self.client = client
        self.conn = h11.Connection(h11.SERVER)

    async def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            await self.stream.send_all(data)

    async def _next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                with trio.move_on_after(IDLE_TIMEOUT) as idle:
                    data = await self.stream.receive_some(65536)
                if idle.cancelled_caught:
                    return h11.PAUSED  # idle: close
                self.conn.receive_data(data)
                continue
            return event

    async def run(self) -> None:
        while True:
            try:
                request = await self._read_request()
            except h11.RemoteProtocolError as exc:
                await self._error_and_close(exc.error_status_hint, str(exc))
                return
            except HttpError as exc:
                await self._error_and_close(exc.status, exc.message)
                return
            if request is None:
                return
            try:
                response = await self.handler(request)
            except HttpError as exc:
                response = Response.json({"error": exc.message}, exc.status)
            except Exception as exc:  # a bug in a handler must not take the agent down
                log.exception("control API: %s %s failed", request.method, request.path)
                response = Response.json({"error": f"internal error: {exc}"}, 500)
            try:
                await self._respond(response)
            finally:
                if response.after is not None:
                    response.after()
            if self.conn.our_state is h11.MUST_CLOSE or response.stream is not None:
                return
            try:
                self.conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _read_request(self) -> Request | None:
        event = await self._next_event()
        if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            return None
        target = event.target.decode("latin-1")
        parts = urlsplit(target)
        body = bytearray()
        while True:
            ev = await self._next_event()
            if isinstance(ev, h11.Data):
                body += ev.data
                if len(body) > MAX_BODY:
                    raise HttpError(413, f"the body is larger than {MAX_BODY} bytes")
            elif isinstance(ev, h11.EndOfMessage):
                break
            else:
                return None
        return Request(event.method.decode("ascii"), parts.path, parse_qs(parts.query),
                       bytes(body), self.client)

    async def _respond(self, r: Response) -> None:
        headers = [("Content-Type", r.content_type), *r.headers]
        if r.stream is None:
            headers.append(("Content-Length", str(len(r.body))))
            await self._send(h11.Response(status_code=r.status, headers=headers,
                                          reason=_reason(r.status)))
            await self._send(h11.Data(data=r.body))
            await self._send(h11.EndOfMessage())
            return
        headers.append(("Transfer-Encoding", "chunked"))
        await self._send(h11.Response(status_code=r.status, headers=headers,
                                      reason=_reason(r.status)))
        async for chunk in r.stream:
            await self._send(h11.Data(data=chunk))
        await self._send(h11.EndOfMessage())

    async def _error_and_close(self, status: int, message: str) -> None:
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = json.dumps({"error": message}).encode() + b"\n"
        try:
            await self._send(h11.Response(status_code=status, reason=_reason(status), headers=[
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                ("Connection", "close")]))
            await self._send(h11.Data(data=body))
            await self._send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            pass


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""
