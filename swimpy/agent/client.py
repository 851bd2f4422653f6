"""The command line's side of the control API: small JSON requests to a running agent
(``urllib`` from the standard library; the agent serves HTTP/1.1 on loopback)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

#: how long a command waits for the agent (a join waits for its push/pulls)
TIMEOUT = 60.0


class ClientError(Exception):
    """Something a person can act on, in one line."""


def _url(rpc_addr: str, path: str) -> str:
    """``host:port``, ``[v6]:port``, a bare host or a bare IPv6 address (port 8400)."""
    text = rpc_addr.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "8400"
        if not bracket:
            host = ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, "8400"
    if not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ClientError(f"--rpc-addr {rpc_addr!r} is not HOST:PORT")
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def request(rpc_addr: str, method: str, path: str, body: Any = None,
            timeout: float = TIMEOUT) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(_url(rpc_addr, path), data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise ClientError(_error_text(exc)) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        raise ClientError(_unreachable(rpc_addr, exc)) from None
    except http.client.HTTPException as exc:
        raise ClientError(f"the agent at {rpc_addr} broke off its answer: {exc!r}") from None


def stream_lines(rpc_addr: str, path: str) -> Iterator[str]:
    req = urllib.request.Request(_url(rpc_addr, path), method="GET")
    try:
        resp = urllib.request.urlopen(req, timeout=None)
    except urllib.error.HTTPError as exc:
        raise ClientError(_error_text(exc)) from None
    except (urllib.error.URLError, ConnectionError) as exc:
        raise ClientError(_unreachable(rpc_addr, exc)) from None
    with resp:
        for raw in resp:
            yield raw.decode(errors="replace").rstrip("\n")


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        payload = json.loads(exc.read())
        message = payload.get("error") if isinstance(payload, dict) else None
    except (json.JSONDecodeError, OSError):
        message = None
    return str(message or f"the agent answered {exc.code} {exc.reason}")


def _unreachable(rpc_addr: str, exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    return (f"no agent at {rpc_addr} ({reason}): is `swimpy agent` running? "
            "try --rpc-addr")
