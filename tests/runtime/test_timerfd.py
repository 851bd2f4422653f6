"""swimpy.runtime.timerfd, and the owner loop waiting on it under trio's system clock."""

from __future__ import annotations

import math
import select
import sys
import time

import pytest
import trio

from swimpy import open_node, profiles
from swimpy.runtime import timerfd

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux timerfd")


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_timerfd_turns_readable_when_due_and_rearming_forgets_the_expiry() -> None:
    tfd = timerfd.create()
    assert tfd is not None
    try:
        fd = tfd.fileno()
        assert not _readable(fd, 0)
        t0 = time.monotonic()
        tfd.arm(0.05)
        assert not _readable(fd, 0.02)
        assert _readable(fd, 2.0)
        assert time.monotonic() - t0 >= 0.05
        # an expiry nobody read is forgotten when the timer is set again or disarmed
        tfd.arm(60.0)
        assert not _readable(fd, 0)
        tfd.arm(0.0)  # "now": the smallest delay, not a disarm
        assert _readable(fd, 2.0)
        tfd.arm(math.inf)
        assert not _readable(fd, 0.1)
    finally:
        tfd.close()


def test_owner_loop_waits_on_the_timerfd_under_the_system_clock() -> None:
    """Two nodes in real time: the owner loop uses the timerfd, probes every interval,
    and a join (TCP tasks hand over to the waiting owner: wake()) completes."""

    async def main() -> None:
        def cfg(name: str) -> profiles.Config:
            return profiles.lan(name=name, bind_addr="127.0.0.1", bind_port=0,
                                probe_interval=0.2, probe_timeout=0.1)

        async with open_node(cfg("a")) as a, open_node(cfg("b")) as b:
            with trio.fail_after(10):
                while a._driver._timerfd is None or b._driver._timerfd is None:
                    await trio.sleep(0.01)
                assert await b.join([f"127.0.0.1:{a.address[1]}"]) == 1
                while a.statistics().counters.get("acks", 0) < 10:
                    await trio.sleep(0.05)
            counters = a.statistics().counters
            assert counters.get("probes_failed", 0) == 0
            # acked probes' timeouts were dropped, not waited for
            assert a._driver.stale_timers_dropped >= 5

    trio.run(main)
