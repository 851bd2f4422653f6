"""Fixtures shared with the runtime tests (processes stopped by PID)."""

from tests.runtime.conftest import procs, serf_bin

__all__ = ["procs", "serf_bin"]
