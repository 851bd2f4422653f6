"""The results file: one JSON object per line, one line per finished task.

Each line is ``{"key", "point", "seed", "scenario", "swimpy", "result"}``, written (and
flushed) as soon as the task finishes, in the order tasks finish. A sweep reads the file
first and runs only the tasks whose key it does not find, so an interrupted sweep resumes
and a finished one reruns nothing. Lines of other sweeps, or of an earlier version of a
scenario, stay in the file and are ignored (their keys match no task).

A line cut short by a crash or a full disk (no newline at the end of the file) is dropped
when the file is opened. While a sweep writes the file it holds an exclusive lock on it
(where the platform has ``fcntl``), so two sweeps cannot interleave their lines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["ResultStore", "StoreError"]


class StoreError(RuntimeError):
    """The results file cannot be read, written or locked."""


class ResultStore:
    """A JSONL results file, opened for appending. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        #: lines that could not be used (not JSON, no key), and a torn last line dropped
        self.bad_lines = 0
        self.dropped_partial = False
        self._file: IO[str] | None = None

    def __enter__(self) -> ResultStore:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Lock the file, drop a torn last line, read every record."""
        try:
            f = open(self.path, "a+", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open: {exc.strerror or exc}") from None
        try:
            _lock(f, self.path)
            f.seek(0)
            text = f.read()
            if text and not text.endswith("\n"):
                cut = text.rfind("\n") + 1
                f.truncate(len(text[:cut].encode("utf-8")))
                text = text[:cut]
                self.dropped_partial = True
            for line in text.splitlines():
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    self.bad_lines += 1
                    continue
                if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
                    self.bad_lines += 1
                    continue
                self.records.setdefault(rec["key"], rec)
            f.seek(0, os.SEEK_END)
        except BaseException:
            f.close()
            raise
        self._file = f

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one line and flush it to the operating system."""
        if self._file is None:
            raise StoreError(f"{self.path}: not open")
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        try:
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        self.records.setdefault(record["key"], record)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _lock(f: IO[str], path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise StoreError(
            f"{path}: another sweep is writing this file; wait for it or use another --out"
        ) from None
