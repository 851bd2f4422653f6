"""Log lines for ``swimpy monitor``: a logging handler that copies formatted records to
each subscriber's bounded buffer (the oldest dropped when a reader falls behind), so a
slow or stuck monitor never blocks the agent."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque

import trio

LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
          "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR}
BUFFER = 1000


def level_number(name: str) -> int:
    try:
        return LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r}; use one of "
                         f"{', '.join(LEVELS)}") from None


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``--log-json``)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S",
                                                       time.gmtime(record.created))
                           + f".{int(record.msecs):03d}Z",
                           "@level": record.levelname.lower(), "@module": record.name,
                           "@message": record.getMessage()})


class Subscription:
    def __init__(self, owner: LogBroadcaster, level: int) -> None:
        self._owner = owner
        self.level = level
        self._lines: deque[str] = deque(maxlen=BUFFER)
        self._token = trio.lowlevel.current_trio_token()
        self._event = trio.Event()
        self._closed = False

    def push(self, line: str) -> None:
        """From any thread."""
        self._lines.append(line)
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._event.set)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> str:
        while not self._lines:
            if self._closed:
                raise StopAsyncIteration
            await self._event.wait()
            self._event = trio.Event()
        return self._lines.popleft()

    def close(self) -> None:
        self._closed = True
        self._owner.unsubscribe(self)


class LogBroadcaster(logging.Handler):
    """Attach to the ``swimpy`` logger. The logger's level follows what is asked for:
    ``base_level`` (the agent's own log level) lowered while a monitor wants more, so
    debug records are only made while someone reads them."""

    def __init__(self, base_level: int = logging.INFO, logger: str = "swimpy") -> None:
        super().__init__(logging.DEBUG)
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._base = base_level
        self._logger = logging.getLogger(logger)
        self.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))

    def subscribe(self, level: str) -> Subscription:
        sub = Subscription(self, level_number(level))
        with self._lock:
            self._subs.append(sub)
        self._relevel()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
        self._relevel()

    def _relevel(self) -> None:
        with self._lock:
            level = min([self._base, *(s.level for s in self._subs)])
        self._logger.setLevel(level)

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            subs = [s for s in self._subs if record.levelno >= s.level]
        if not subs:
            return
        try:
            line = self.format(record)
        except Exception:  # a bad record must not break logging
            return
        for s in subs:
            s.push(line)
