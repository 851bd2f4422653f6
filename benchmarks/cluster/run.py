"""Running one cluster of one system through the benchmark's phases: join, steady state,
kills. The same code for every system (see :mod:`cluster.adapters`)."""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from procstat import TERM_TIMEOUT, cpu_seconds, free_ports, loadavg, machine_ticks, rss_mib

from cluster.adapters import EventLog, Member, System
from cluster.events import DEAD, JOINED, SUSPECT, Event, suspicion_episodes
from cluster.nftcount import NftCounters, traffic
from cluster.sniff import Sniffer
from cluster.stats import summarize

#: suspicion reports about one member less than this far apart are one episode
EPISODE_GAP = 10.0


def log(msg: str) -> None:
    print(msg, flush=True)


def stop_all(members: Sequence[Member]) -> None:
    """SIGTERM every running member by PID at once (they leave in parallel), then wait;
    SIGKILL those still running after ``TERM_TIMEOUT``."""
    procs = [m.proc for m in members if m.proc is not None and m.proc.poll() is None]
    for p in procs:
        os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + TERM_TIMEOUT
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
    for m in members:
        m.join_reader()


def join_curve(events: Sequence[Event], names: Sequence[str], t0: float
               ) -> list[tuple[float, float]]:
    """(seconds after ``t0``, share of ordered member pairs in which the observer has seen
    the subject join) at each first join; joins before ``t0`` count at 0."""
    firsts: dict[tuple[str, str], float] = {}
    for e in events:
        if e.kind == JOINED and e.observer in names and e.subject in names:
            firsts.setdefault((e.observer, e.subject), e.t)
    pairs = len(names) * (len(names) - 1)
    times = sorted(max(0.0, t - t0) for t in firsts.values())
    return [(round(t, 4), round((i + 1) / pairs, 4)) for i, t in enumerate(times)]


def detection(events: Sequence[Event], victim: str, survivors: Sequence[str],
              t_kill: float) -> dict[str, Any]:
    """Per-survivor time from the kill to its first dead report of the victim, the first
    suspicion anywhere, and the time until every survivor had it dead."""
    dead: dict[str, float] = {}
    suspect: list[float] = []
    for e in events:
        if e.subject != victim or e.t < t_kill or e.observer not in survivors:
            continue
        if e.kind == DEAD:
            dead.setdefault(e.observer, e.t - t_kill)
        elif e.kind == SUSPECT:
            suspect.append(e.t - t_kill)
    out: dict[str, Any] = {
        "victim": victim,
        "per_survivor_dead_s": {k: round(v, 4) for k, v in sorted(dead.items())},
        "first_suspect_s": round(min(suspect), 4) if suspect else None,
        "first_dead_s": round(min(dead.values()), 4) if dead else None,
        "all_dead_s": (round(max(dead.values()), 4)
                       if len(dead) == len(survivors) else None),
    }
    return out


def false_suspicions(events: Sequence[Event], kills: Sequence[dict[str, Any]]
                     ) -> dict[str, Any]:
    """Suspicion episodes (and dead reports) about members that were running: anything
    but the victim between its kill and the moment every member had it alive again."""
    def expected(e: Event) -> bool:
        return any(e.subject == k["victim"] and k["t_kill"] <= e.t <= k["t_back"]
                   for k in kills)

    wrong = [e for e in events if not expected(e)]
    episodes = suspicion_episodes(wrong, EPISODE_GAP)
    deaths = [e for e in wrong if e.kind == DEAD]

    def since_back(subject: str, t: float) -> float | None:
        backs = [k["t_back"] for k in kills if k["victim"] == subject and k["t_back"] <= t]
        return round(t - max(backs), 3) if backs else None

    return {"episodes": len(episodes),
            "suspect_reports": sum(1 for e in wrong if e.kind == SUSPECT),
            "dead_reports": len(deaths),
            "subjects": sorted({s for s, _ in episodes}),
            # seconds since the subject was last back alive everywhere after a kill
            # (None: never killed before)
            "after_rejoin_s": [since_back(s, t) for s, t in episodes]}


def run_cluster(system: System, n: int, *, kills: int, window: float, settle: float,
                seed: int, log_dir: Path, nft: NftCounters | None, sniff: bool = False,
                probe_interval: float = 1.0) -> dict[str, Any]:
    """Start ``n`` members, measure join convergence, a steady-state window (CPU, RSS,
    traffic) and ``kills`` SIGKILL/restart cycles; stop them all."""
    log_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    events = EventLog()
    ports = free_ports(2 * n)
    prefix = system.name.split("-")[0]
    names = [f"{prefix}-{i:02d}" for i in range(n)]
    members = [Member(system, names[i], ports[i], ports[n + i], log_dir, events)
               for i in range(n)]
    result: dict[str, Any] = {"system": system.name, "members": n, "ports": ports[:n]}
    phases: dict[str, Any] = {}
    sniffer: Sniffer | None = None
    try:
        if nft is not None:
            nft.install(ports[:n])
        # --- join ---------------------------------------------------------------------
        phases["join"] = {"loadavg_before": loadavg()}
        t_first = time.monotonic()
        members[0].start()
        members[0].wait_ready()
        for m in members[1:]:
            m.start([members[0].address])
        t_last = members[-1].started_at
        ready = max(m.wait_ready() for m in members)
        t_conv = events.wait_for(lambda: events.all_alive(names), 60 + 2 * n,
                                 f"{n} {system.name} members to see each other alive")
        curve = join_curve(events.since(0), names, t_last)
        result["join"] = {
            "from_last_start_s": round(t_conv - t_last, 3),
            "from_last_ready_s": round(t_conv - ready, 3),
            "from_first_start_s": round(t_conv - t_first, 3),
            "last_start_to_ready_s": round(ready - t_last, 3),
            "curve": curve,
        }
        phases["join"]["loadavg_after"] = loadavg()
        log(f"  {system.name} N={n}: converged {t_conv - t_last:.2f} s after the last start "
            f"({ready - t_last:.2f} s until it was up)")
        # --- steady state ---------------------------------------------------------------
        time.sleep(settle)  # let the join's gossip and first push/pulls die down
        pids = [m.pid for m in members]
        phases["steady"] = {"loadavg_before": loadavg()}
        sniffer = Sniffer(ports[:n]).start() if sniff else None
        before = nft.read() if nft is not None else {}
        busy0, total0 = machine_ticks()
        cpu0 = [cpu_seconds(p) for p in pids]
        t0 = time.monotonic()
        time.sleep(window)  # the measurement window
        cpu1 = [cpu_seconds(p) for p in pids]
        elapsed = time.monotonic() - t0
        after = nft.read() if nft is not None else {}
        busy1, total1 = machine_ticks()
        captured = sniffer.stop() if sniffer is not None else None
        sniffer = None
        rss = [rss_mib(p) for p in pids]
        for m in members:
            if not m.running:
                raise RuntimeError(f"{m.name} exited during the window:\n{m.log_tail()}")
        cpu = [100 * (b - a) / elapsed for a, b in zip(cpu0, cpu1, strict=True)]
        ncpu = os.cpu_count() or 1
        busy = ncpu * (busy1 - busy0) / max(1, total1 - total0)
        result["steady"] = {
            "window_s": round(elapsed, 2),
            "settle_s": settle,
            "cpu_percent_per_member": summarize(cpu, 4),
            "cpu_percent_each": [round(c, 4) for c in cpu],
            "rss_mib": summarize(rss, 1),
            "machine_busy_cores": round(busy, 3),
            "other_busy_cores": round(busy - sum(cpu) / 100, 3),
            "traffic": traffic(before, after, ports[:n], elapsed) if nft is not None else None,
            "capture": per_member_capture(captured, n, elapsed) if captured else None,
        }
        phases["steady"]["loadavg_after"] = loadavg()
        st = result["steady"]
        log(f"  {system.name} N={n}: CPU {st['cpu_percent_per_member']['mean']:.3f}% of a "
            f"core per member, RSS {st['rss_mib']['mean']:.1f} MiB"
            + (f", {st['traffic']['bytes_per_member_s']:.0f} B/s and "
               f"{st['traffic']['udp_datagrams_per_member_s']:.1f} datagrams/s per member"
               if st["traffic"] else ""))
        # --- kills ----------------------------------------------------------------------
        phases["kills"] = {"loadavg_before": loadavg()}
        records: list[dict[str, Any]] = []
        for k in range(kills):
            victim = members[(k % n)]
            survivors = [m.name for m in members if m is not victim]
            # a random phase against the probe schedule (seeded)
            time.sleep(rng.uniform(0, probe_interval))
            t_kill = victim.kill()
            events.reset_view(victim.name)
            vname = victim.name

            def all_dead(vname: str = vname, survivors: list[str] = survivors) -> bool:
                return all(events.views.get(o, {}).get(vname) == "dead" for o in survivors)

            try:
                events.wait_for(all_dead, 90, f"every survivor to report {vname} dead")
            except TimeoutError as exc:
                log(f"  kill {k + 1}: {exc}")
            det = detection(events.since(t_kill), vname, survivors, t_kill)
            seed_member = members[(k + 1) % n]
            victim.start([seed_member.address])
            victim.wait_ready()
            t_back = events.wait_for(lambda: events.all_alive(names), 90,
                                     f"{vname} to be back alive everywhere")
            det.update({"t_kill": t_kill, "t_back": t_back,
                        "rejoin_s": round(t_back - t_kill - (det["all_dead_s"] or 0), 3),
                        "loadavg": loadavg()})
            records.append(det)
            log(f"  {system.name} N={n} kill {k + 1}/{kills} {vname}: first suspicion "
                f"{det['first_suspect_s']} s, all dead {det['all_dead_s']} s")
        phases["kills"]["loadavg_after"] = loadavg()
        all_events = events.since(0)
        result["kills"] = records
        result["detection"] = detection_summary(records)
        result["false"] = false_suspicions(all_events, records)
        own = [e.t - e.own_t for e in all_events if e.own_t is not None]
        if own:
            result["line_delay_ms"] = summarize([1000 * d for d in own], 2)
        result["phases"] = phases
        return result
    finally:
        if sniffer is not None:  # a failure during the window
            sniffer.stop()
        stop_all(members)


def per_member_capture(cap: dict[str, Any], n: int, seconds: float) -> dict[str, Any]:
    """The capture's totals, and the same per member per second."""
    per = n * seconds
    udp, tcp = cap["udp"], cap["tcp"]
    cap["per_member_s"] = {
        "udp_payload_bytes": round(udp["payload_bytes"] / per, 1),
        "ack_payload_bytes": round(udp["ack_payload_bytes"] / per, 1),
        "user_msg_bytes": round(udp["user_msg_bytes"] / per, 1),
        "push_pull_user_state_bytes": round(tcp["user_state_bytes"] / per, 1),
        "tcp_payload_bytes": round(tcp["payload_bytes"] / per, 1),
    }
    return cap


def detection_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    all_dead = [r["all_dead_s"] for r in records if r["all_dead_s"] is not None]
    first_dead = [r["first_dead_s"] for r in records if r["first_dead_s"] is not None]
    first_suspect = [r["first_suspect_s"] for r in records if r["first_suspect_s"] is not None]
    per_survivor = [v for r in records for v in r["per_survivor_dead_s"].values()]
    return {
        "kills": len(records),
        "undetected": sum(1 for r in records if r["all_dead_s"] is None),
        "all_dead_s": summarize(all_dead),
        "first_dead_s": summarize(first_dead),
        "first_suspect_s": summarize(first_suspect),
        "per_survivor_dead_s": summarize(per_survivor),
        "rejoin_s": summarize([r["rejoin_s"] for r in records]),
        "all_dead_values": all_dead,
        "first_suspect_values": first_suspect,
    }


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
