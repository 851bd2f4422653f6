"""The trio runtime on real processes and sockets: CPU and memory per member against Go
Serf, how many datagrams one node absorbs, and how late its probe ticks fire while it
merges a 5,000-member push/pull.

Usage::

    python benchmarks/bench_runtime.py                 # full: 60 s CPU windows (~8 min)
    python benchmarks/bench_runtime.py --quick         # 20 s windows, one lateness trial (~2 min)
    python benchmarks/bench_runtime.py --parts cpu --members 16 --window 60
    python benchmarks/bench_runtime.py --parts udp,lateness --out /tmp/runtime.json
    # members from another checkout (before/after), results stored under a label
    python benchmarks/bench_runtime.py --parts cpu --swimpy-root /tmp/old --label before

Parts (``--parts``, default all):

* ``cpu``: ``--members`` swimpy members, each its own process
  (``python -m swimpy.runtime.child``, lan profile, status file every 5 s), joined into one
  cluster; then, after they are stopped, as many ``serf agent`` processes (lan defaults,
  ``-log-level=warn``), joined. Once every member sees all alive and ``--settle`` seconds
  passed, each process's CPU time (``/proc/PID/stat`` utime + stime) is read over
  ``--window`` seconds: percent of one core per member (mean, max), and RSS
  (``/proc/PID/status`` VmRSS) at the end of the window. The clusters run one after the
  other so they do not compete for the cores; the machine's busy cores during each window
  are recorded. With ``--concurrent`` both clusters run at once and are measured in one
  window, so both see the same load from whatever else runs on the machine.
  ``--swimpy-root`` runs the members from another checkout (before/after comparisons).
* ``udp``: one swimpy node (in this process, trio, lan profile) receives valid pings
  (``swimpy.wire`` ping packets addressed to its name) from a sender in another process,
  at increasing paced rates for ``--step`` seconds each, then as fast as the sender can
  for a flood step. Sent is compared with the node's ``packets_received`` counter (read
  after it drained its socket); the highest rate with < 1% loss and the most datagrams
  processed per second are reported, with the kernel's drop count for the socket.
* ``lateness``: one swimpy node in this process (trio, lan profile) whose engine is
  wrapped to note when each timer was due (``SetTimer.at``) and when the driver handed
  it back; after a baseline, a fake peer joins it with a push/pull carrying 5,000 alive
  member states (memberlist's framing, LZW-compressed as memberlist does by default),
  sent just before a probe tick is due. Reported: the lateness of probe ticks (and of all
  timers) in the baseline and after the merge, and the time the merge took in the engine.

Every process is stopped by its PID (SIGTERM, then SIGKILL) in a ``finally`` block; all
waiting is on conditions with deadlines (the measurement windows themselves are sleeps).
Results are merged into ``benchmarks/results/runtime.json`` under ``quick`` or ``full``
(one entry per part) and printed as a short table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import heapq
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any
from unittest import mock

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # allow running from a checkout without installing
    sys.path.insert(0, str(_ROOT))

import trio  # noqa: E402
from bench_wire import machine_info, serf_meta  # noqa: E402
from procstat import (  # noqa: E402
    TERM_TIMEOUT,
    cpu_seconds,
    free_ports,
    machine_ticks,
    rss_mib,
    stop_process,
)

import swimpy.core.engine as engine_module  # noqa: E402
import swimpy.runtime.node as node_module  # noqa: E402
from swimpy import profiles  # noqa: E402
from swimpy.core.actions import Action, SetTimer  # noqa: E402
from swimpy.core.engine import Engine  # noqa: E402
from swimpy.core.inputs import ConnId, Input, Request, TimerFired  # noqa: E402
from swimpy.core.member import Address  # noqa: E402
from swimpy.core.pushpull import PushPullSync  # noqa: E402
from swimpy.core.timers import ProbeTick, Timer  # noqa: E402
from swimpy.profiles import Config  # noqa: E402
from swimpy.runtime.node import Node, open_node  # noqa: E402
from swimpy.sim.runner import percentile  # noqa: E402
from swimpy.wire import Ping, PushNodeState, encode_message  # noqa: E402
from swimpy.wire.packet import WireOptions, encode_packet  # noqa: E402
from swimpy.wire.stream import PushPull, encode_push_pull, frame_stream  # noqa: E402

DEFAULT_OUT = _ROOT / "benchmarks" / "results" / "runtime.json"
PARTS = ("cpu", "udp", "lateness")
HOST = "127.0.0.1"
#: SIGTERM, then SIGKILL after this many seconds
#: paced rates of the udp part (datagrams per second), tried in order until one loses >5%
UDP_RATES = (2_000, 5_000, 10_000, 12_500, 15_000, 17_500, 20_000, 22_500, 25_000, 30_000,
             40_000, 50_000, 60_000, 80_000, 100_000)
#: a paced rate is "kept up with" when the node processed at least this share of the send
#: rate while the sender ran (the socket buffer hides a small backlog from the loss count)
KEPT_UP = 0.97
#: the lateness part sends a push/pull's last bytes this long before a probe tick is due
LEAD = 0.005


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- waiting, ports and processes -----------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.1) -> float:
    """Poll ``predicate`` until true; the seconds it took. ``AssertionError`` at the deadline."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Processes:
    """Processes started by this benchmark, each logging to its own file; :meth:`stop_all`
    stops them by PID, newest first (SIGTERM, SIGKILL after ``TERM_TIMEOUT``)."""

    def __init__(self, log_dir: Path, root: Path = _ROOT) -> None:
        self.log_dir = log_dir
        #: the source tree whose swimpy package the processes import
        self.root = root
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._logs: list[IO[bytes]] = []

    def start(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop_all
        self._logs.append(out)
        env = dict(os.environ, PYTHONPATH=str(self.root))
        proc = subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=self.root, env=env)
        self.procs.append((name, proc))
        return proc

    def check_running(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} (pid {proc.pid}) exited with {proc.returncode}:\n"
                                   f"{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 2000) -> str:
        try:
            return (self.log_dir / f"{name}.log").read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop_all(self) -> None:
        while self.procs:
            _name, proc = self.procs.pop()
            stop_process(proc)
        while self._logs:
            self._logs.pop().close()


def run_cmd(args: Sequence[str], timeout: float = 10.0) -> str:
    done = subprocess.run(list(args), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {done.returncode}: "
                           f"{done.stdout}{done.stderr}")
    return done.stdout


# --- /proc -----------------------------------------------------------------------------------


def udp_drops(port: int) -> int:
    """The kernel's drop count for the IPv4 UDP socket bound to ``HOST:port``."""
    want = f"0100007F:{port:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[1] == want:
            return int(cols[-1])
    return 0


def summary(values: Sequence[float], digits: int = 2) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), digits), "max": round(max(values), digits),
            "min": round(min(values), digits)}


# --- part 1: CPU and memory per member --------------------------------------------------------


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def swimpy_alive_views(paths: Sequence[Path], names: set[str]) -> bool:
    for path in paths:
        status = read_status(path)
        if status is None:
            return False
        alive = {m["name"] for m in status["members"] if m["status"] == "alive"}
        if not names <= alive:
            return False
    return True


def serf_alive_views(rpc_ports: Sequence[int], names: set[str]) -> bool:
    for rpc in rpc_ports:
        try:
            out = run_cmd(["serf", "members", f"-rpc-addr={HOST}:{rpc}", "-format=json"])
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        alive = {m["name"] for m in json.loads(out)["members"] if m["status"] == "alive"}
        if not names <= alive:
            return False
    return True


def measure_window(pids: Sequence[int], window: float) -> dict[str, Any]:
    """CPU % of one core and RSS of each process over ``window`` seconds."""
    return measure_windows([pids], window)[0]


def measure_windows(groups: Sequence[Sequence[int]], window: float) -> list[dict[str, Any]]:
    """:func:`measure_window` for several groups of processes over one shared window (the
    machine's busy cores are for all of them together)."""
    busy0, total0 = machine_ticks()
    t0 = time.monotonic()
    cpu0 = [[cpu_seconds(p) for p in pids] for pids in groups]
    time.sleep(window)  # the measurement window
    cpu1 = [[cpu_seconds(p) for p in pids] for pids in groups]
    elapsed = time.monotonic() - t0
    busy1, total1 = machine_ticks()
    ncpu = os.cpu_count() or 1
    busy = ncpu * (busy1 - busy0) / max(1, total1 - total0)
    all_cpu = sum(100 * (b - a) / elapsed for c0, c1 in zip(cpu0, cpu1, strict=True)
                  for a, b in zip(c0, c1, strict=True))
    out = []
    for pids, c0, c1 in zip(groups, cpu0, cpu1, strict=True):
        rss = [rss_mib(p) for p in pids]
        cpu = [100 * (b - a) / elapsed for a, b in zip(c0, c1, strict=True)]
        out.append(_window_result(elapsed, cpu, rss, busy, all_cpu))
    return out


def _window_result(elapsed: float, cpu: list[float], rss: list[float], busy: float,
                   all_cpu: float) -> dict[str, Any]:
    return {
        "window_s": round(elapsed, 2),
        "cpu_percent": summary(cpu, 3),
        "cpu_percent_total": round(sum(cpu), 2),
        "rss_mib": summary(rss, 1),
        "cpu_percent_per_member": [round(c, 3) for c in cpu],
        "rss_mib_per_member": [round(r, 1) for r in rss],
        "machine_busy_cores": round(busy, 3),
        # what else ran on the machine meanwhile (other processes, the kernel)
        "other_busy_cores": round(busy - all_cpu / 100, 3),
        "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
    }


#: what a cluster function calls once its members converged and settled: measure their
#: PIDs over the window (another cluster may be started and measured alongside)
Measure = Callable[[list[int]], dict[str, Any]]


def swimpy_cluster(n: int, window: float, settle: float, tmp: Path,
                   root: Path = _ROOT, measure: Measure | None = None) -> dict[str, Any]:
    procs = Processes(tmp, root)
    try:
        ports = free_ports(n)
        names = [f"swimpy-{i:02d}" for i in range(n)]
        paths = [tmp / f"{name}.json" for name in names]
        pids: list[int] = []
        start = time.monotonic()
        for i, name in enumerate(names):
            args = [sys.executable, "-m", "swimpy.runtime.child", "--name", name,
                    "--bind", f"{HOST}:{ports[i]}", "--profile", "lan",
                    "--status-file", str(paths[i]), "--status-interval", "5",
                    "--no-stdin", "--log-level", "WARNING"]
            if i:
                args += ["--join", f"{HOST}:{ports[0]}"]
            pids.append(procs.start(name, args).pid)
            if i == 0:  # the seed listens once it wrote its first status
                wait_until(lambda: paths[0].exists(), 30, "the first member's status file")

        def converged() -> bool:
            procs.check_running()
            return swimpy_alive_views(paths, set(names))

        wait_until(converged, 90, f"{n} swimpy members to see each other alive", 0.5)
        converge_s = time.monotonic() - start
        log(f"  swimpy: {n} members alive everywhere after {converge_s:.1f} s "
            f"(status files every 5 s); settling {settle:g} s, measuring {window:g} s")
        time.sleep(settle)  # let the join's gossip die down before measuring
        before = [read_status(p) for p in paths]
        mtimes0 = [p.stat().st_mtime for p in paths]
        result = measure(pids) if measure else measure_window(pids, window)
        procs.check_running()
        # the views once more: still all alive after the window (files are 5 s old at most)
        mtime_deadline = max(mtimes0) + 5
        wait_until(lambda: min(p.stat().st_mtime for p in paths) > mtime_deadline, 15,
                   "fresh status files")
        after = [read_status(p) for p in paths]
        mtimes1 = [p.stat().st_mtime for p in paths]
        result["all_alive_after_window"] = swimpy_alive_views(paths, set(names))
        rates: dict[str, list[float]] = {"packets_sent": [], "packets_received": []}
        for b, a, t0, t1 in zip(before, after, mtimes0, mtimes1, strict=True):
            if a is None or b is None or t1 <= t0:
                continue
            for key, values in rates.items():
                values.append((a["statistics"].get(key, 0) - b["statistics"].get(key, 0))
                              / (t1 - t0))
        result["per_member_per_s"] = {k: round(statistics.fmean(v), 2)
                                      for k, v in rates.items() if v}
        result["converge_s"] = round(converge_s, 1)
        result["command"] = "python -m swimpy.runtime.child --profile lan --status-interval 5"
        return result
    finally:
        procs.stop_all()


def serf_cluster(n: int, window: float, settle: float, tmp: Path,
                 measure: Measure | None = None) -> dict[str, Any]:
    procs = Processes(tmp)
    try:
        ports = free_ports(2 * n)
        gossip, rpc = ports[:n], ports[n:]
        names = [f"serf-{i:02d}" for i in range(n)]
        pids: list[int] = []
        start = time.monotonic()
        for i, name in enumerate(names):
            args = ["serf", "agent", f"-node={name}", f"-bind={HOST}:{gossip[i]}",
                    f"-rpc-addr={HOST}:{rpc[i]}", "-log-level=warn"]
            pids.append(procs.start(name, args).pid)

        def ready(port: int) -> bool:
            procs.check_running()
            try:
                run_cmd(["serf", "members", f"-rpc-addr={HOST}:{port}"])
            except (RuntimeError, subprocess.TimeoutExpired):
                return False
            return True

        for port in rpc:
            wait_until(functools.partial(ready, port), 30, f"serf RPC on port {port}")
        for port in rpc[1:]:
            run_cmd(["serf", "join", f"-rpc-addr={HOST}:{port}", f"{HOST}:{gossip[0]}"])

        def converged() -> bool:
            procs.check_running()
            return serf_alive_views(rpc, set(names))

        wait_until(converged, 90, f"{n} serf agents to see each other alive", 0.5)
        converge_s = time.monotonic() - start
        log(f"  serf: {n} agents alive everywhere after {converge_s:.1f} s; "
            f"settling {settle:g} s, measuring {window:g} s")
        time.sleep(settle)
        result = measure(pids) if measure else measure_window(pids, window)
        procs.check_running()
        result["all_alive_after_window"] = serf_alive_views(rpc, set(names))
        result["converge_s"] = round(converge_s, 1)
        result["command"] = "serf agent -log-level=warn (lan defaults)"
        result["version"] = run_cmd(["serf", "version"]).splitlines()[0]
        return result
    finally:
        procs.stop_all()


def part_cpu(n: int, window: float, settle: float, root: Path = _ROOT,
             concurrent: bool = False) -> dict[str, Any]:
    have_serf = shutil.which("serf") is not None
    serf: dict[str, Any] | None = None
    # The members' status files (rewritten every 5 s, atomically: write, then rename) are
    # the benchmark's own probe, not a member's work; on tmpfs a rewrite costs about a
    # seventh of what it costs on ext4 (~25 vs ~155 us), which was ~7% of a swimpy
    # member's CPU. Serf is observed over its RPC port, outside the window.
    shm = Path("/dev/shm")
    status_dir = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="bench-runtime-", dir=status_dir) as d:
        tmp = Path(d)
        if concurrent and have_serf:
            # Both clusters in one window: each measured while the other runs, under the
            # same load from the rest of the machine (32 mostly idle processes take a few
            # percent of a core, so they hardly compete).
            log(f"cpu: {n} swimpy members and {n} serf agents, measured together")
            got: dict[str, dict[str, Any]] = {}

            def with_serf(swimpy_pids: list[int]) -> dict[str, Any]:
                def both(serf_pids: list[int]) -> dict[str, Any]:
                    got["swimpy"], got["serf"] = measure_windows([swimpy_pids, serf_pids],
                                                                 window)
                    return got["serf"]

                got["serf_done"] = serf_cluster(n, window, settle, tmp, measure=both)
                return got["swimpy"]

            swimpy = swimpy_cluster(n, window, settle, tmp, root, measure=with_serf)
            serf = got["serf_done"]
            schedule = "concurrent: swimpy and serf clusters measured in one window"
        else:
            log(f"cpu: {n} swimpy members, then {n} serf agents")
            swimpy = swimpy_cluster(n, window, settle, tmp, root)
            serf = serf_cluster(n, window, settle, tmp) if have_serf else None
            schedule = "sequential: swimpy cluster, stopped, then serf cluster"
        swimpy["swimpy_root"] = "this checkout" if root == _ROOT else str(root)
    out: dict[str, Any] = {"members": n, "window_s": window, "settle_s": settle,
                           "schedule": schedule, "status_files": status_dir or "/tmp",
                           "swimpy": swimpy, "serf": serf}
    if serf is not None:
        out["ratio_swimpy_to_serf"] = {
            "cpu_mean": round(swimpy["cpu_percent"]["mean"] / serf["cpu_percent"]["mean"], 2),
            "cpu_max": round(swimpy["cpu_percent"]["max"] / serf["cpu_percent"]["max"], 2),
            "rss_mean": round(swimpy["rss_mib"]["mean"] / serf["rss_mib"]["mean"], 2),
        }
    return out


# --- part 2: datagrams one node absorbs -------------------------------------------------------


def blast(port: int, name: str, rate: float, seconds: float) -> dict[str, Any]:
    """The sender (run in its own process): pings to ``name`` at ``HOST:port``, paced at
    ``rate`` per second (0: as fast as possible) for ``seconds``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # acks: not read
    src_port = sock.getsockname()[1]
    opts = WireOptions(compression=False)
    packets = [
        encode_packet(encode_message(Ping(seq, name, bytes((127, 0, 0, 1)), src_port, "blaster")),
                      opts, crc=False)
        for seq in range(1, 1025)
    ]
    dest = (HOST, port)
    sent = errors = 0
    start = time.monotonic()
    end = start + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * rate) + 1 if rate else sent + 256
        if sent >= due:
            time.sleep(0.0005)
            continue
        for _ in range(min(due - sent, 1024)):
            try:
                sock.sendto(packets[sent & 1023], dest)
            except OSError:  # ENOBUFS and the like
                errors += 1
            sent += 1
    stop = time.monotonic()
    sock.close()
    return {"sent": sent - errors, "send_errors": errors, "start": start, "end": stop,
            "packet_bytes": len(packets[0])}


async def stop_trio_process(proc: trio.Process) -> None:
    if proc.returncode is None:
        os.kill(proc.pid, signal.SIGTERM)
        with trio.move_on_after(TERM_TIMEOUT):
            await proc.wait()
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()


async def blast_step(node: Node, rate: float, seconds: float) -> dict[str, Any]:
    port = node.address[1]
    samples: list[tuple[float, int]] = []

    def received() -> int:
        return node.statistics().counters.get("packets_received", 0)

    r0 = received()
    drops0 = udp_drops(port)
    cpu0 = time.process_time()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--blast",
           json.dumps([port, node.name, rate, seconds])]
    proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE)
    try:
        async with trio.open_nursery() as nursery:
            async def sample() -> None:
                while True:
                    samples.append((time.monotonic(), received()))
                    await trio.sleep(0.05)

            nursery.start_soon(sample)
            out = b""
            assert proc.stdout is not None
            while chunk := await proc.stdout.receive_some(65536):
                out += chunk
            await proc.wait()
            nursery.cancel_scope.cancel()
    finally:
        await stop_trio_process(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"the sender exited with {proc.returncode}")
    sender = json.loads(out)
    sent = sender["sent"]
    # wait until the node has read everything the kernel still holds for it
    with trio.move_on_after(30):
        last, still = received(), 0
        while still < 5 and received() - r0 < sent:
            await trio.sleep(0.05)
            now = received()
            still = still + 1 if now == last else 0
            last = now
    got = received() - r0
    cpu = time.process_time() - cpu0
    during = [(t, c) for t, c in samples if sender["start"] <= t <= sender["end"]]
    processed = None
    if len(during) >= 2 and during[-1][0] > during[0][0]:
        processed = (during[-1][1] - during[0][1]) / (during[-1][0] - during[0][0])
    elapsed = sender["end"] - sender["start"]
    return {
        "target_rate": rate or None,
        "seconds": round(elapsed, 2),
        "sent": sent,
        "send_rate": round(sent / elapsed),
        "received": got,
        "loss": round(1 - got / sent, 4) if sent else 0.0,
        "processed_per_s_while_sending": round(processed) if processed else None,
        "kept_up": bool(processed and processed >= KEPT_UP * sent / elapsed),
        "node_cpu_s": round(cpu, 3),
        "node_cpu_us_per_datagram": round(1e6 * cpu / got, 1) if got else None,
        "kernel_drops": udp_drops(port) - drops0,
        "packet_bytes": sender["packet_bytes"],
    }


async def part_udp(step: float, flood: float) -> dict[str, Any]:
    config = profiles.lan(name="target", bind_addr=HOST, bind_port=0)
    steps: list[dict[str, Any]] = []
    async with open_node(config) as node:
        log(f"udp: pings to one node, {step:g} s per rate, then a {flood:g} s flood")
        for rate in UDP_RATES:
            s = await blast_step(node, rate, step)
            steps.append(s)
            log(f"  {rate:>7}/s: sent {s['send_rate']:>7}/s, loss {100 * s['loss']:.2f}%, "
                f"processed {s['processed_per_s_while_sending']}/s, "
                f"{s['node_cpu_us_per_datagram']} us CPU each")
            if s["loss"] > 0.05:
                break
        flood_step = await blast_step(node, 0, flood)
        log(f"  flood: sent {flood_step['send_rate']}/s, processed "
            f"{flood_step['processed_per_s_while_sending']}/s, loss {flood_step['loss']:.2%}")
        stats = node.statistics().as_dict()
    passing = [s["target_rate"] for s in steps if s["loss"] < 0.01]
    kept_up = [s["target_rate"] for s in steps if s["loss"] < 0.01 and s["kept_up"]]
    return {
        "node": "in the benchmark process (trio, lan profile, 2 MiB SO_RCVBUF)",
        "sender": "another Python process, pings addressed to the node (no CRC, no compression)",
        "step_s": step,
        "steps": steps,
        "max_rate_under_1pct_loss": max(passing) if passing else None,
        "max_rate_kept_up": max(kept_up) if kept_up else None,
        "kept_up_means": f"loss < 1% and processed >= {KEPT_UP:.0%} of the send rate while "
                         "sending (the socket buffer holds a few thousand datagrams)",
        "flood": flood_step,
        "max_processed_per_s": max(
            [s["processed_per_s_while_sending"] or 0 for s in [*steps, flood_step]]),
        "node_counters": {k: v for k, v in stats.items()
                          if k.startswith(("udp_", "dropped", "packets", "acks"))},
    }


# --- part 3: probe tick lateness during a big merge ------------------------------------------


class Recorder:
    """Due and fired times of every timer of one engine, and how long engine calls take."""

    def __init__(self) -> None:
        self.pending: dict[Timer, list[float]] = {}
        #: (timer type, due, fired) in trio time
        self.fired: list[tuple[str, float, float]] = []
        #: (start, seconds, what) of engine calls over 5 ms: the input's type, or the
        #: timer's for a timer
        self.long_calls: list[tuple[float, float, str]] = []
        self.on_request: list[tuple[float, float]] = []
        self.merge: list[tuple[float, float]] = []

    def actions(self, actions: list[Action]) -> list[Action]:
        for a in actions:
            if type(a) is SetTimer:
                heapq.heappush(self.pending.setdefault(a.timer, []), a.at)
        return actions

    def timer_fired(self, timer: Timer) -> None:
        dues = self.pending.get(timer)
        if dues:
            self.fired.append((type(timer).__name__, heapq.heappop(dues), trio.current_time()))

    def next_due(self, timer: Timer) -> float | None:
        dues = self.pending.get(timer)
        return dues[0] if dues else None


def instrumented(rec: Recorder) -> tuple[type[Engine], type[PushPullSync]]:
    """An Engine and a PushPullSync that report to ``rec`` (patched in for one node)."""

    class TimedEngine(Engine):
        def start(self, now: float) -> list[Action]:
            return rec.actions(super().start(now))

        def _timed(self, what: str, call: Callable[[], list[Action]]) -> list[Action]:
            t0 = time.perf_counter()
            out = call()
            took = time.perf_counter() - t0
            if took > 0.005:
                rec.long_calls.append((trio.current_time() - took, took, what))
            return rec.actions(out)

        # the owner loop calls timer_fired / packet_received for timers and datagrams,
        # handle for the rest (stream data); all three are timed
        def handle(self, inp: Input, now: float) -> list[Action]:
            if type(inp) is TimerFired:
                rec.timer_fired(inp.timer)
            what = type(inp.timer if type(inp) is TimerFired else inp).__name__
            return self._timed(what, lambda: super(TimedEngine, self).handle(inp, now))

        def timer_fired(self, timer: Timer, now: float) -> list[Action]:
            rec.timer_fired(timer)
            return self._timed(type(timer).__name__,
                               lambda: super(TimedEngine, self).timer_fired(timer, now))

        def packet_received(self, source: Address, data: object, now: float) -> list[Action]:
            return self._timed("PacketReceived", lambda: super(TimedEngine, self)
                               .packet_received(source, data, now))

        def submit(self, req: Request, now: float) -> tuple[int, list[Action]]:
            rid, actions = super().submit(req, now)
            return rid, rec.actions(actions)

    class TimedPushPull(PushPullSync):
        def on_request(self, conn: ConnId, pp: PushPull, now: float) -> None:
            t0 = time.perf_counter()
            super().on_request(conn, pp, now)
            rec.on_request.append((trio.current_time(), time.perf_counter() - t0))

        def merge_remote(self, pp: PushPull, join: bool, now: float) -> str | None:
            t0 = time.perf_counter()
            err = super().merge_remote(pp, join, now)
            rec.merge.append((trio.current_time(), time.perf_counter() - t0))
            return err

    return TimedEngine, TimedPushPull


def fake_push_pull(config: Config, members: int, compression: bool) -> tuple[bytes, int]:
    """A join push/pull from a peer that knows ``members`` alive members (itself included),
    none of them reachable (127.1.x.y on a port nothing listens on), framed as a
    memberlist dialer frames it. Returns (bytes, body bytes before compression)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("0.0.0.0", 0))
    port = probe.getsockname()[1]
    probe.close()
    meta = serf_meta({"role": "web", "dc": "dc1"})
    states = [
        PushNodeState(name=f"fake-{i:05d}", addr=bytes((127, 1, i // 256 % 256, i % 256)),
                      port=port, meta=meta, incarnation=1, state=0, vsn=config.vsn)
        for i in range(members)
    ]
    body = encode_push_pull(True, states)
    return frame_stream(body, WireOptions(compression=compression), dialer=True), len(body)


def lateness_stats(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "mean_ms": round(statistics.fmean(ms), 3),
            "p50_ms": round(percentile(ms, 50), 3), "p99_ms": round(percentile(ms, 99), 3),
            "max_ms": round(max(ms), 3)}


async def lateness_trial(members: int, baseline: float, after: float,
                         compression: bool) -> dict[str, Any]:
    rec = Recorder()
    engine_cls, pushpull_cls = instrumented(rec)
    config = profiles.lan(name="target", bind_addr=HOST, bind_port=0,
                          enable_compression=compression)
    t_build = time.perf_counter()
    payload, body_len = fake_push_pull(config, members, compression)
    build_s = time.perf_counter() - t_build
    with mock.patch.object(node_module, "Engine", engine_cls), \
            mock.patch.object(engine_module, "PushPullSync", pushpull_cls):
        async with open_node(config) as node:
            t_open = trio.current_time()
            await trio.sleep(baseline)  # the baseline window
            # The worst moment for the probe ticker: the push/pull completes just before a
            # tick is due. Right after a tick, connect and send all but the last bytes;
            # send those LEAD seconds before the next tick is due (trio wakes sleepers up
            # to ~2 ms late; the owner loop handles handed-over stream data before due
            # timers in the same turn, so the tick then waits for the whole merge).
            with trio.fail_after(10):
                while (due := rec.next_due(ProbeTick())) is None \
                        or due - trio.current_time() < 0.5:
                    await trio.sleep(0.01)
            t_send = trio.current_time()
            stream = await trio.open_tcp_stream(HOST, node.address[1])
            reply = 0
            async with stream:
                await stream.send_all(payload[:-16])
                await trio.sleep_until(due - LEAD)
                t_last = trio.current_time()
                await stream.send_all(payload[-16:])
                with trio.fail_after(60):
                    while chunk := await stream.receive_some(65536):
                        reply += len(chunk)
            t_reply = trio.current_time()
            await trio.sleep(after)  # the window after the merge
            t_end = trio.current_time()
            stats = node.statistics()
    probe_base = [f - d for k, d, f in rec.fired
                  if k == "ProbeTick" and t_open + 1 <= f < t_send]
    all_base = [f - d for k, d, f in rec.fired if t_open + 1 <= f < t_send]
    probe_after = [f - d for k, d, f in rec.fired if k == "ProbeTick" and t_send <= f <= t_end]
    all_after = [f - d for k, d, f in rec.fired if t_send <= f <= t_end]
    first_probe = next((f - d for k, d, f in rec.fired if k == "ProbeTick" and f >= t_send), None)
    merge_s = [s for t, s in rec.merge if t >= t_send]
    request_s = [s for t, s in rec.on_request if t >= t_send]
    long_after = [{"at_s": round(t - t_last, 3), "ms": round(s * 1000, 1), "input": k}
                  for t, s, k in rec.long_calls if t >= t_send]
    return {
        "members": members,
        "compression": compression,
        "stream_bytes": len(payload),
        "body_bytes": body_len,
        "build_payload_s": round(build_s, 3),
        "reply_bytes": reply,
        "baseline_s": baseline,
        "after_s": after,
        "merge_s": round(merge_s[0], 4) if merge_s else None,
        "on_request_s": round(request_s[0], 4) if request_s else None,
        "last_bytes_to_reply_s": round(t_reply - t_last, 4),
        "sent_last_bytes_before_tick_ms": round((due - t_last) * 1000, 2),
        "engine_calls_over_5ms_after": len(long_after),
        # the first ones, at_s after the last bytes were sent
        "engine_calls_over_5ms_after_list": long_after[:10],
        "first_probe_tick_after_send_late_ms": (round(first_probe * 1000, 1)
                                                if first_probe is not None else None),
        "probe_ticks_baseline": lateness_stats(probe_base),
        "probe_ticks_after": lateness_stats(probe_after),
        "all_timers_baseline": lateness_stats(all_base),
        "all_timers_after": lateness_stats(all_after),
        "members_after": stats.members,
        "queue_depth_after": stats.queue_depth,
    }


async def part_lateness(members: int, trials: Sequence[bool], baseline: float,
                        after: float) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for i, compression in enumerate(trials, 1):
        log(f"lateness: trial {i}/{len(trials)}, {members} members, "
            f"{'LZW' if compression else 'plain'}, {baseline:g} s baseline + {after:g} s after")
        r = await lateness_trial(members, baseline, after, compression)
        log(f"  merge {r['merge_s']} s, push/pull answered in {r['on_request_s']} s; probe "
            f"ticks late: baseline max {r['probe_ticks_baseline'].get('max_ms')} ms, after max "
            f"{r['probe_ticks_after'].get('max_ms')} ms")
        results.append(r)

    def pooled(key: str, compression: bool) -> dict[str, Any]:
        # max over trials; p99 over trials is the max of their p99s (few samples each)
        rows = [r[key] for r in results if r["compression"] is compression and r[key]["n"]]
        if not rows:
            return {"n": 0}
        return {"n": sum(x["n"] for x in rows),
                "p99_ms": max(x["p99_ms"] for x in rows),
                "max_ms": max(x["max_ms"] for x in rows),
                "mean_ms": round(statistics.fmean(x["mean_ms"] for x in rows), 3)}

    summary_by: dict[str, Any] = {}
    for compression in sorted(set(trials), reverse=True):
        rows = [r for r in results if r["compression"] is compression]
        summary_by["lzw" if compression else "plain"] = {
            "trials": len(rows),
            "merge_s": [r["merge_s"] for r in rows],
            "on_request_s": [r["on_request_s"] for r in rows],
            "last_bytes_to_reply_s": [r["last_bytes_to_reply_s"] for r in rows],
            "probe_ticks_baseline": pooled("probe_ticks_baseline", compression),
            "probe_ticks_after": pooled("probe_ticks_after", compression),
            "first_probe_tick_after_send_late_ms": [
                r["first_probe_tick_after_send_late_ms"] for r in rows],
            "all_timers_baseline": pooled("all_timers_baseline", compression),
            "all_timers_after": pooled("all_timers_after", compression),
        }
    return {"node": "in the benchmark process (trio, lan profile)",
            "push_pull": (f"a join from a fake peer; its last 16 bytes sent {LEAD * 1000:g} ms "
                          "before a probe tick is due"),
            "summary": summary_by, "trials": results}


# --- report ---------------------------------------------------------------------------------


def print_table(report: dict[str, Any]) -> None:
    cpu = report.get("cpu")
    if cpu:
        print(f"\nCPU and RSS per member ({cpu['members']} members each, "
              f"{cpu['window_s']:g} s window, {cpu['schedule'].split(':')[0]})")
        print(f"{'system':<8} {'cpu % mean':>10} {'cpu % max':>10} {'RSS MiB mean':>13} "
              f"{'RSS MiB max':>12} {'busy cores':>10}")
        for system in ("swimpy", "serf"):
            r = cpu.get(system)
            if r:
                print(f"{system:<8} {r['cpu_percent']['mean']:>10.2f} "
                      f"{r['cpu_percent']['max']:>10.2f} {r['rss_mib']['mean']:>13.1f} "
                      f"{r['rss_mib']['max']:>12.1f} {r['machine_busy_cores']:>10.2f}")
        ratio = cpu.get("ratio_swimpy_to_serf")
        if ratio:
            print(f"swimpy/serf: cpu {ratio['cpu_mean']}x, rss {ratio['rss_mean']}x")
    udp = report.get("udp")
    if udp:
        print(f"\nUDP pings into one node: highest paced rate with < 1% loss "
              f"{udp['max_rate_under_1pct_loss']}/s (kept up with {udp['max_rate_kept_up']}/s); "
              f"most processed "
              f"{udp['max_processed_per_s']}/s (flood: sent {udp['flood']['send_rate']}/s, "
              f"loss {udp['flood']['loss']:.1%})")
    lat = report.get("lateness")
    if lat:
        print("\nProbe tick lateness (ms) and a 5,000-member push/pull merge")
        print(f"{'stream':<6} {'base p99':>9} {'base max':>9} {'after p99':>10} "
              f"{'after max':>10} {'merge s':>16} {'answered s':>16}")
        for name, s in lat["summary"].items():
            b, a = s["probe_ticks_baseline"], s["probe_ticks_after"]
            print(f"{name:<6} {b.get('p99_ms', '-'):>9} {b.get('max_ms', '-'):>9} "
                  f"{a.get('p99_ms', '-'):>10} {a.get('max_ms', '-'):>10} "
                  f"{','.join(str(x) for x in s['merge_s']):>16} "
                  f"{','.join(str(x) for x in s['on_request_s']):>16}")


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    log(f"{what} took {time.monotonic() - t0:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="20 s windows and one lateness trial (N stays 16)")
    parser.add_argument("--members", type=int, default=16, help="members per cluster (16)")
    parser.add_argument("--window", type=float, help="CPU window in seconds (60; quick 20)")
    parser.add_argument("--settle", type=float, help="seconds between convergence and the "
                        "CPU window (10; quick 5)")
    parser.add_argument("--step", type=float, help="seconds per UDP rate (5; quick 3)")
    parser.add_argument("--push-pull-members", type=int, default=5000,
                        help="members in the merged push/pull (5000)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"JSON results, merged by mode (default {DEFAULT_OUT})")
    parser.add_argument("--swimpy-root", type=Path, default=_ROOT,
                        help="source tree whose swimpy the cpu part's members run (another "
                        "checkout, for before/after comparisons; default this one)")
    parser.add_argument("--concurrent", action="store_true",
                        help="cpu part: run the swimpy and serf clusters at the same time and "
                        "measure them in one window (same machine load for both)")
    parser.add_argument("--label", help="store the results under this name instead of "
                        "quick/full (e.g. issue10-before)")
    parser.add_argument("--blast", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.blast:
        port, name, rate, seconds = json.loads(args.blast)
        print(json.dumps(blast(port, name, rate, seconds)))
        return 0
    parts = [p for p in args.parts.split(",") if p]
    for p in parts:
        if p not in PARTS:
            parser.error(f"unknown part {p!r}; choose from {', '.join(PARTS)}")
    quick = args.quick
    window = args.window or (20.0 if quick else 60.0)
    settle = args.settle if args.settle is not None else (5.0 if quick else 10.0)
    step = args.step or (3.0 if quick else 5.0)
    lat_window = 10.0 if quick else 30.0
    trials = [True] if quick else [True, True, True, False]
    mode = args.label or ("quick" if quick else "full")

    report: dict[str, Any] = {}
    if "cpu" in parts:
        with timed("cpu"):
            report["cpu"] = part_cpu(args.members, window, settle, args.swimpy_root,
                                     args.concurrent)
    if "udp" in parts:
        with timed("udp"):
            report["udp"] = trio.run(part_udp, step, 2 * step)
    if "lateness" in parts:
        with timed("lateness"):
            report["lateness"] = trio.run(part_lateness, args.push_pull_members, trials,
                                          lat_window, lat_window)

    results: dict[str, Any] = {"benchmark": "runtime", "runs": {}}
    if args.out.exists():
        results = json.loads(args.out.read_text())
    run = results["runs"].setdefault(mode, {})
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    for part, value in report.items():
        value["date"] = now
        value["machine"] = machine_info()
        run[part] = value
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(report)
    print(f"\nwrote {args.out} ({mode})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
