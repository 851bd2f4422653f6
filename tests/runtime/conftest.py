"""Fixtures for tests that run real processes (serf agents, swimpy nodes) on loopback."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.serfharness import ProcessRegistry, requires_serf

__all__ = ["requires_serf"]


@pytest.fixture
def serf_bin() -> str:
    """The path of the ``serf`` binary; skips the test if serf is not installed."""
    path = shutil.which("serf")
    if path is None:
        pytest.skip("serf is not installed (apt-get install serf)")
    return path


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessRegistry]:
    """A registry for every process the test starts; all are stopped by PID afterwards,
    also when the test fails. Logs go to ``tmp_path``."""
    registry = ProcessRegistry(tmp_path, serf_bin=shutil.which("serf") or "serf")
    try:
        yield registry
    finally:
        registry.close()
