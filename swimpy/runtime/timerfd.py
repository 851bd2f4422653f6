"""A Linux timerfd: a file descriptor that turns readable when a timer expires, so the
owner loop can wait for "a datagram or the next timer" as one readable fd.

Why: waking trio's task at a cancel scope's deadline goes through cancellation (a
``Cancelled`` raised through the wait, the scope closed, a new one opened and its
deadline registered), and on a steady member that made a timer wake cost about 1.6 times
a datagram wake (~310 against ~190 us of CPU, benchmarks/README.md, issue 10). With the
UDP socket and a timerfd in one epoll set, the owner waits on that epoll fd with
``wait_readable`` and every wake is the cheap kind.

``os.timerfd_create`` exists from Python 3.13; on 3.11 it is called through ctypes. Where
it is missing (not Linux, no libc symbol), :func:`create` returns None and the owner
loop waits with a cancel scope instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
from collections.abc import Callable

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
#: the smallest delay we arm (timerfd_settime with a zero value disarms instead)
_MIN_DELAY = 1e-9


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class TimerFd:
    """One non-blocking CLOCK_MONOTONIC timerfd, armed relative to now."""

    __slots__ = ("_fd", "_settime", "_spec", "_spec_ref")

    def __init__(self, fd: int, settime: Callable[..., int]) -> None:
        self._fd = fd
        self._settime = settime
        self._spec = _Itimerspec()  # reused: no allocation per arm
        self._spec_ref = ctypes.byref(self._spec)

    def fileno(self) -> int:
        return self._fd

    def arm(self, delay: float) -> None:
        """Expire once, ``delay`` seconds from now (at least 1 ns); ``math.inf`` disarms.
        Either way an expiry not yet read is forgotten (the kernel resets the count), so
        the fd stops being readable."""
        value = self._spec.it_value
        if delay == math.inf:
            value.tv_sec = value.tv_nsec = 0
        else:
            delay = max(delay, _MIN_DELAY)
            sec = int(delay)
            nsec = int((delay - sec) * 1e9)
            value.tv_sec = sec
            value.tv_nsec = nsec if sec or nsec else 1
        if self._settime(self._fd, 0, self._spec_ref, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def create() -> TimerFd | None:
    """A new timerfd, or None where the platform has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        timerfd_create = libc.timerfd_create
        timerfd_settime = libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
    timerfd_create.restype = ctypes.c_int
    timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                                ctypes.c_void_p]
    timerfd_settime.restype = ctypes.c_int
    fd = timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
    if fd < 0:
        return None
    return TimerFd(fd, timerfd_settime)


__all__ = ["TimerFd", "create"]
