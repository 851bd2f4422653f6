"""A swimpy node in a child process (``python -m swimpy.runtime.child``) for tests that need
a real SIGKILL: start, read its view from the status file it writes, command it, kill it,
restart it under the same name and port. Stopped by PID (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from tests.runtime.serfharness import stop_process, wait_until


class SwimpyProcess:
    def __init__(self, name: str, log_dir: Path, *, port: int, host: str = "127.0.0.1",
                 join: list[str] | None = None, tags: dict[str, str] | None = None,
                 key: str | None = None, profile: str = "lan",
                 settings: dict[str, str] | None = None) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.join = list(join or [])
        self.tags = dict(tags or {})
        self.key = key
        self.profile = profile
        self.settings = dict(settings or {})
        self.log_path = Path(log_dir) / f"swimpy-{name}.log"
        self.status_path = Path(log_dir) / f"swimpy-{name}.json"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "swimpy.runtime.child", "--name", self.name,
               "--bind", self.address, "--profile", self.profile,
               "--status-file", str(self.status_path), "--log-level", "DEBUG"]
        for j in self.join:
            cmd += ["--join", j]
        for k, v in self.tags.items():
            cmd += ["--tag", f"{k}={v}"]
        if self.key:
            cmd += ["--key", self.key]
        for k, v in self.settings.items():
            cmd += ["--set", f"{k}={v}"]
        return cmd

    def start(self) -> SwimpyProcess:
        if self.status_path.exists():
            self.status_path.unlink()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        wait_until(lambda: self.status() is not None, timeout, f"{self.name} to start",
                   context=self.log_tail)

    def status(self) -> dict[str, Any] | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                 f"{self.log_tail()}")
        try:
            data: dict[str, Any] = json.loads(self.status_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data

    def statuses(self) -> dict[str, str]:
        data = self.status()
        if data is None:
            return {}
        return {m["name"]: m["status"] for m in data["members"]}

    def statistics(self) -> dict[str, int]:
        data = self.status()
        return {} if data is None else dict(data["statistics"])

    def command_line(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL by PID: a real crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> SwimpyProcess:
        self.kill()
        return self.start()

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            stop_process(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]
