"""swimpy.sim runs on virtual time: no trio, sockets, threads or global randomness, and
no clock except the runner's wall_seconds / progress bar (DESIGN.md, Simulator)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.core.test_layering import violations

SIM = Path(__file__).resolve().parents[2] / "swimpy" / "sim"
#: runner.py reads time.perf_counter for wall_seconds and the progress bar, nothing else.
ALLOWED = {"runner.py": {"import time"}}


@pytest.mark.parametrize("path", sorted(SIM.glob("*.py")), ids=lambda p: p.name)
def test_simulator_modules_use_no_io_clock_threads_or_global_random(path: Path) -> None:
    bad = set(violations(path.read_text())) - ALLOWED.get(path.name, set())
    assert bad == set()


def test_the_runner_reads_only_perf_counter() -> None:
    src = (SIM / "runner.py").read_text()
    assert set(re.findall(r"\btime\.(\w+)", src)) == {"perf_counter"}
