"""What the benchmarks read about processes and the machine from Linux's /proc, and the
ports they hand to the members they start (shared by bench_runtime.py and
bench_cluster.py, so both measure CPU, memory and load the same way)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

#: clock ticks per second of /proc/PID/stat's utime and stime
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: how long a member may take to leave after SIGTERM before it gets SIGKILL
TERM_TIMEOUT = 5.0


def loadavg() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages, rounded for the reports."""
    return [round(x, 2) for x in os.getloadavg()]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free for both TCP and UDP a moment ago (held together while
    choosing, so none repeats)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(tcp)
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(udp)
            try:
                udp.bind((host, port))
            except OSError:
                continue
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    """A process's resident set size (VmRSS), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores (/proc/stat; idle, iowait and steal are not busy)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8])  # guest time is already in user
    return total - values[3] - values[4] - values[7], total


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str],
                 term_timeout: float = TERM_TIMEOUT) -> None:
    """Stop ``proc`` by its PID: SIGTERM (a member leaves gracefully), SIGKILL if it is
    still running after ``term_timeout``; nothing if it has exited already."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=term_timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
