"""Simulator benchmarks: scale, speed, memory, and memberlist's timing distributions.

    python benchmarks/bench_sim.py                    # everything except the 10k cluster
    python benchmarks/bench_sim.py --cases crash-10000
    python benchmarks/bench_sim.py --cases all
    python benchmarks/bench_sim.py --cases crash-10000-300 --tree /tmp/old-checkout

Cases (each runs in its own process, so its peak RSS is its own):

* ``crash-1000``: the shipped ``crash`` scenario (starts converged) with 1,000 LAN members
  for 300 simulated seconds in fast mode. Target: under 60 s of wall time on one core.
* ``crash-10000``: the same with 10,000 members for 60 s. Target: under 16 GiB peak RSS.
* ``crash-10000-300``: 10,000 members for 300 s (``swimpy sim crash --nodes 10000
  --duration 300s``). Target: at most 120 s of wall time and 3 GiB.
* ``crash-30000``: 30,000 members for 60 s. Target: under 16 GiB peak RSS.
* ``join-1000``: the shipped ``join`` scenario with 1,000 members for 60 s: a cluster
  forming by joins, with thousands of broadcasts in flight (the broadcast queue's and the
  duplicate-alive path's worst case).
* ``fidelity``: the same 100-member run in fast and wire mode (same trace, wall ratio).
* ``distributions``: crash detection and join/heal convergence over many seeds, on small
  clusters (what ``tests/test_sim_schedule.py`` bounds).
* ``scenarios``: every shipped scenario (except ``large``) with seeds 1..5, summarised.
* ``theory-join``, ``theory-detect``, ``theory-lifeguard``, ``theory-bandwidth``
  (``--cases theory`` for the four; not part of ``all``): the simulator against the
  closed-form models of ``benchmarks/theory.py`` (docs/theory.md): join dissemination at
  100 to 10,000 members on lan and wan, first detection of a crash, false deaths with 10 %
  of members starved with and without Lifeguard, bandwidth per member against cluster
  size. Results in ``benchmarks/results/sim_theory.json``, figures in
  ``benchmarks/results/theory/`` and ``docs/img/theory-*.svg``.

Every crash case reports wall and CPU time (set-up and run), peak RSS and RSS per member.
``--tree PATH`` runs the cases against the swimpy in another checkout (a ``git worktree``
of an older commit, say) for before/after comparisons; ``bench_scale.py`` alternates
two trees.

Results are merged into ``benchmarks/results/sim.json`` (one key per case; the theory
cases into ``sim_theory.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: the checkout whose swimpy is measured (``--tree``; the child processes inherit it)
TREE = Path(os.environ.get("SWIMPY_BENCH_TREE") or ROOT)
sys.path.insert(0, str(TREE))

import theory  # noqa: E402  (benchmarks/theory.py, beside this file)

from swimpy import sim  # noqa: E402
from swimpy.core.actions import MemberEvent, SendPacket  # noqa: E402
from swimpy.core.member import EventKind  # noqa: E402
from swimpy.sim.runner import percentile  # noqa: E402
from swimpy.sim.simulation import Simulation  # noqa: E402
from swimpy.wire.messages import IndirectPing, Ping  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "sim.json"
DEFAULT_CASES = ("crash-1000", "fidelity", "distributions", "scenarios")
ALL_CASES = ("crash-1000", "crash-10000", "crash-10000-300", "crash-30000", "join-1000",
             "fidelity", "distributions", "scenarios")


def peak_rss_mib() -> float:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(ru / (1024 * 1024) if sys.platform == "darwin" else ru / 1024, 1)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
    }


def dist(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "min": round(min(xs), 4),
        "mean": round(statistics.mean(xs), 4),
        "median": round(percentile(xs, 50), 4),
        "p90": round(percentile(xs, 90), 4),
        "p99": round(percentile(xs, 99), 4),
        "max": round(max(xs), 4),
    }


# ------------------------------------------------------------------------ cases

#: One member joins a converged cluster at 10 s.
JOIN_ONE = """
nodes = {n}
duration = "75s"
[start]
absent = "newcomer"
[groups]
newcomer = {{ count = 1 }}
[network]
latency = {{ dist = "uniform", low = "0.2ms", high = "1ms" }}
[[events]]
at = "10s"
action = "join"
group = "newcomer"
"""


def case_crash(nodes: int, duration: float, scenario: str = "crash") -> dict[str, Any]:
    sc = sim.load_scenario(scenario).with_overrides(nodes=nodes, duration=duration)
    base_rss = peak_rss_mib()  # the interpreter with swimpy imported
    t0, c0 = time.perf_counter(), time.process_time()
    s = Simulation(sc, 1)
    t1, c1 = time.perf_counter(), time.process_time()
    setup_rss = peak_rss_mib()
    r = s.run()
    t2, c2 = time.perf_counter(), time.process_time()
    peak = peak_rss_mib()
    return {
        "scenario": scenario,
        "nodes": nodes,
        "simulated_seconds": duration,
        "fidelity": sc.fidelity,
        "start": sc.start.mode,
        "tree": str(TREE),
        "wall_seconds": round(t2 - t0, 2),
        "setup_seconds": round(t1 - t0, 2),
        "run_seconds": round(t2 - t1, 2),
        # CPU time of this process: less disturbed than wall time by other jobs sharing
        # the cores (not undisturbed: they still share caches and memory bandwidth)
        "cpu_seconds": round(c2 - c0, 2),
        "setup_cpu_seconds": round(c1 - c0, 2),
        "run_cpu_seconds": round(c2 - c1, 2),
        "events": r["events_processed"],
        "events_per_second": round(r["events_processed"] / (t2 - t1)),
        "events_per_cpu_second": round(r["events_processed"] / max(c2 - c1, 1e-9)),
        "peak_rss_mib": peak,
        "rss_after_setup_mib": setup_rss,
        "rss_before_setup_mib": base_rss,
        # (peak RSS - the interpreter's) / members: what one more member costs
        "rss_per_member_kib": round((peak - base_rss) * 1024 / nodes, 1),
        "setup_rss_per_member_kib": round((setup_rss - base_rss) * 1024 / nodes, 1),
        "convergence_s": r["convergence_s"],
        "detections": r["detections"],
        "false_suspicions": r["false_suspicions"],
        "packets": r["packets"],
        "streams": r["streams"],
        "messages_per_node_per_s": r["messages_per_node_per_s"],
        "bytes_per_node_per_s": r["bytes_per_node_per_s"],
        "trace_sha256": r["trace_sha256"],
    }


def case_fidelity() -> dict[str, Any]:
    sc = sim.load_scenario("crash").with_overrides(nodes=100, duration=60)
    out: dict[str, Any] = {"scenario": "crash", "nodes": 100, "simulated_seconds": 60}
    for mode in ("fast", "wire"):
        r = sim.run(sc, seed=1, fidelity=mode)
        out[mode] = {
            "wall_seconds": r["wall_seconds"],
            "bytes_per_node_per_s": r["bytes_per_node_per_s"],
            "bytes_mode": r["bytes_mode"],
            "trace_sha256": r["trace_sha256"],
        }
    out["same_trace"] = out["fast"]["trace_sha256"] == out["wire"]["trace_sha256"]
    out["wire_over_fast"] = round(out["wire"]["wall_seconds"] / out["fast"]["wall_seconds"], 2)
    return out


def case_distributions() -> dict[str, Any]:
    from swimpy.core.lifeguard import suspicion_timeout
    from swimpy.profiles import lan

    cfg = lan()
    out: dict[str, Any] = {"profile": "lan", "probe_interval": cfg.probe_interval,
                           "probe_timeout": cfg.probe_timeout}
    for n, seeds in ((5, 300), (20, 200), (100, 100)):
        sc = sim.load_scenario("crash").with_overrides(nodes=n, duration=80)
        first_s, first_d, all_d, gap = [], [], [], []
        for seed in range(seeds):
            d = next(iter(sim.run(sc, seed=seed)["detections"].values()))
            first_s.append(d["first_suspect_s"])
            first_d.append(d["first_dead_s"])
            all_d.append(d["all_dead_s"])
            gap.append(d["first_dead_s"] - d["first_suspect_s"])
        lo = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
        out[f"crash_n{n}"] = {
            "seeds": seeds,
            "suspicion_min_s": lo,
            "suspicion_max_s": lo * cfg.suspicion_max_timeout_mult,
            "first_suspect_s": dist(first_s),
            "first_suspect_in_probe_intervals_mean": round(
                statistics.mean(first_s) / cfg.probe_interval, 3),
            "first_dead_s": dist(first_d),
            "dead_after_first_suspect_s": dist(gap),
            "all_dead_s": dist(all_d),
        }
    for n in (5, 20):
        one = sim.parse_scenario(JOIN_ONE.format(n=n), source=f"join-one-n{n}")
        conv = [sim.run(one, seed=s)["convergence_s"] for s in range(300)]
        out[f"join_one_into_converged_n{n}"] = {
            "seeds": 300,
            "push_pull_interval_s": cfg.push_pull_interval,
            "never": sum(1 for c in conv if c is None),
            "over_3s": sum(1 for c in conv if c is not None and c > 3),
            "convergence_after_join_s": dist([c for c in conv if c is not None]),
        }
    join = sim.load_scenario("join")
    conv = [sim.run(join, seed=s)["convergence_s"] for s in range(200)]
    out["join_forming_n20"] = {
        "seeds": 200,
        "push_pull_interval_s": cfg.push_pull_interval,
        "never": sum(1 for c in conv if c is None),
        "over_3s": sum(1 for c in conv if c is not None and c > 3),
        "convergence_after_last_start_s": dist([c for c in conv if c is not None]),
    }
    heal = sim.load_scenario("partition-half")
    conv = [sim.run(heal, seed=s)["convergence_s"] for s in range(100)]
    out["partition_half_n20_heal"] = {
        "seeds": 100,
        "reconnect_interval_s": cfg.reconnect_interval,
        "never": sum(1 for c in conv if c is None),
        "convergence_after_heal_s": dist([c for c in conv if c is not None]),
    }
    return out


def case_scenarios() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sim.list_scenarios():
        if name == "large":
            continue
        r = sim.run(name, seed=1, runs=5)
        out[name] = {
            "nodes": r["runs"][0]["nodes"],
            "profile": r["runs"][0]["profile"],
            "seeds": "1..5",
            "summary": r["summary"],
        }
    return out



# ------------------------------------------------------------------------ theory cases
#
# The simulator against closed-form models (benchmarks/theory.py; docs/theory.md). Each
# case drives Simulation objects directly and watches what the models speak about: when
# each member first hears of a joiner, the first ping of a crashed member, suspicions and
# deaths of running members by class, bytes per member. Results go to sim_theory.json.

THEORY_RESULTS = ROOT / "benchmarks" / "results" / "sim_theory.json"
THEORY_CASES = ("theory-join", "theory-detect", "theory-lifeguard", "theory-bandwidth")
THEORY_PLOTS = ROOT / "benchmarks" / "results" / "theory"
#: one-way latency of each profile's network in these runs (uniform between the two)
THEORY_LATENCY = {"lan": (0.0002, 0.001), "wan": (0.010, 0.050)}
#: SWIMPY_THEORY_QUICK=1: a few seeds and small clusters only (a smoke run of the code)
THEORY_QUICK = bool(os.environ.get("SWIMPY_THEORY_QUICK"))


def _seeds(k: int) -> int:
    return min(k, 3) if THEORY_QUICK else k

THEORY_SCENARIO = """
nodes = {nodes}
profile = "{profile}"
duration = "{duration}s"
[start]
mode = "converged"
{absent}
[network]
latency = {{ dist = "uniform", low = "{lo}s", high = "{hi}s" }}
[groups]
newcomers = {{ count = {newcomers} }}
slow = {{ count = {slow} }}
{config}
{events}
"""


def theory_scenario(nodes: int, profile: str, duration: float, *, newcomers: int = 1,
                    absent: bool = False, slow: int = 1, config: str = "",
                    events: str = "") -> sim.Scenario:
    lo, hi = THEORY_LATENCY[profile]
    text = THEORY_SCENARIO.format(
        nodes=nodes, profile=profile, duration=duration, lo=lo, hi=hi,
        newcomers=newcomers, slow=slow, config=config, events=events,
        absent='absent = "newcomers"' if absent else "")
    return sim.parse_scenario(text, source=f"theory-{profile}-{nodes}")


class WatchedSimulation(Simulation):
    """A Simulation that also records, for one watched member, when every other member
    first lists it (JOINED), the first ping and the first indirect ping sent about it
    (from ``since`` on) and its first suspicion; and every suspicion or death of a running
    member (the false ones: these runs have no partitions)."""

    def __init__(self, scenario: sim.Scenario, seed: int) -> None:
        self.watch = -1
        self.watch_name = ""
        self.watch_addr: tuple[str, int] | None = None
        self.since = math.inf
        self.known: dict[int, float] = {}
        self.first_ping: float | None = None
        self.first_indirect: float | None = None
        self.first_suspect: float | None = None
        #: (observer, subject, kind letter, incarnation, time) of verdicts on running members
        self.verdicts: list[tuple[int, int, str, int, float]] = []
        super().__init__(scenario, seed)

    def set_watch(self, i: int) -> None:
        self.watch, self.watch_name, self.watch_addr = i, self.names[i], self.addrs[i]
        self.since = self.now
        self.known = {}
        self.first_ping = self.first_indirect = self.first_suspect = None

    def _member_event(self, o: int, ev: MemberEvent, t: float) -> None:
        super()._member_event(o, ev, t)
        s = self.index.get(ev.member.name)
        if s is None:
            return
        kind = ev.kind
        if s == self.watch and o != s:
            if kind is EventKind.JOINED:
                self.known.setdefault(o, t)
            elif kind is EventKind.SUSPECT and self.first_suspect is None and t >= self.since:
                self.first_suspect = t
        if kind in (EventKind.SUSPECT, EventKind.DEAD) and self.running[s] and o != s:
            self.verdicts.append((o, s, "S" if kind is EventKind.SUSPECT else "D",
                                  ev.member.incarnation, t))

    def watch_pings(self) -> None:
        """Look at what every running member sends from its timers (the probe tick sends
        the ping, the probe timeout the indirect pings) for the first ping and indirect
        ping of the watched member. The loop hands most datagrams straight to the network
        (``_send_packet`` sees only the rest), so this wraps the engines' ``timer_fired``
        (``handle`` on older trees)."""
        for node in self.nodes:
            if node is None:
                continue
            name = "timer_fired" if hasattr(node, "timer_fired") else "handle"
            inner = getattr(node, name)

            def fired(timer: Any, t: float, inner: Any = inner) -> Any:
                acts = inner(timer, t)
                if acts and t >= self.since:
                    for a in acts:
                        if type(a) is SendPacket:
                            self._look(a, t)
                return acts

            setattr(node, name, fired)

    def _look(self, a: SendPacket, t: float) -> None:
        parts = a.data if isinstance(a.data, tuple) else ()
        for p in parts:
            if (type(p) is Ping and a.dest == self.watch_addr and p.node == self.watch_name
                    and self.first_ping is None):
                self.first_ping = t
            elif (type(p) is IndirectPing and p.node == self.watch_name
                  and self.first_indirect is None):
                self.first_indirect = t


def _timing(profile: str) -> theory.Timing:
    from swimpy import profiles

    return theory.Timing.from_config(profile, profiles.by_name(profile))


def _disseminate(s: WatchedSimulation, j: int, audience: int, deadline: float,
                 step: float) -> dict[str, Any]:
    """Start member ``j`` (it joins one random running member) and run until all
    ``audience`` members that were running list it, or ``deadline`` seconds pass."""
    s.set_watch(j)
    t_join = s.now
    s.restart(j)
    while len(s.known) < audience and s.now < t_join + deadline:
        s.run_until(s.now + step)
    times = sorted(s.known.values())
    t0 = times[0] if times else math.nan  # the seed, as it merges the joiner's push/pull
    rel = [x - t0 for x in times]
    out: dict[str, Any] = {
        "seed_knows_after_join_s": round(t0 - t_join, 6),
        "informed": len(times),
        "audience": audience,
    }
    for q in (0.5, 0.9, 0.99):
        out[f"q{round(q * 100)}_s"] = round(rel[min(len(rel) - 1, math.ceil(q * audience) - 1)],
                                             6) if len(rel) >= q * audience else None
    out["all_s"] = round(rel[-1], 6) if len(rel) == audience else None
    out["all_after_join_s"] = round(times[-1] - t_join, 6) if len(rel) == audience else None
    out["curve"] = [round(x, 4) for x in rel[:: max(1, audience // 50)]]
    return out


def case_theory_join() -> dict[str, Any]:
    """A member joins a converged cluster of n (lan and wan): time until every member
    lists it, against the synchronous floor, random push, unsynchronised push and the
    transmit-limited mean field."""
    out: dict[str, Any] = {"latency_s": THEORY_LATENCY, "sources": 2}
    plan = {100: _seeds(200), 1000: _seeds(40)}
    for profile in ("lan", "wan"):
        tm = _timing(profile)
        warm = tm.probe_interval
        step = tm.gossip_interval / 4
        for n, seeds in plan.items():
            sc = theory_scenario(n + 1, profile, 1e6, absent=True)
            runs, cpu0 = [], time.process_time()
            for seed in range(seeds):
                s = WatchedSimulation(sc, seed)
                s.run_until(warm)
                runs.append(_disseminate(s, n, n, 30 * tm.gossip_interval * 10, step))
            out[f"{profile}_n{n}"] = _join_summary(runs, n, tm, seeds,
                                                     time.process_time() - cpu0)
        # 10,000: one simulation, newcomers joining one after another (set-up is costly)
        big, joins = (300, 2) if THEORY_QUICK else (10_000, 6)
        sc = theory_scenario(big + joins, profile, 1e6, absent=True, newcomers=joins)
        cpu0 = time.process_time()
        s = WatchedSimulation(sc, 1)
        s.run_until(warm)
        runs = []
        for k in range(joins):
            runs.append(_disseminate(s, big + k, big + k, 30 * tm.gossip_interval * 10, step))
            s.run_until(s.now + 0.5)
        out[f"{profile}_n{big}"] = _join_summary(runs, big, tm, joins,
                                                   time.process_time() - cpu0)
        out[f"{profile}_n{big}"]["note"] = (
            f"{joins} newcomers joining one after another in one simulation (seed 1)")
    return out


def _join_summary(runs: list[dict[str, Any]], n: int, tm: theory.Timing, seeds: int,
                  cpu: float) -> dict[str, Any]:
    lo, hi = THEORY_LATENCY[tm.name]
    lat = (lo + hi) / 2
    k = tm.gossip_nodes
    g = tm.gossip_interval
    pop = n + 1  # the joiner and the n members
    limit = theory.retransmit_limit(tm.retransmit_mult, pop)
    keff = theory.effective_fanout(tm)
    limited = theory.limited_push_rounds(pop, keff, limit, sources=2)
    done = [r["all_s"] for r in runs if r["all_s"] is not None]
    return {
        "n": n,
        "profile": tm.name,
        "runs": seeds,
        "cpu_seconds": round(cpu, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "never_within_deadline": seeds - len(done),
        "all_s": dist(done),
        "q50_s": dist([r["q50_s"] for r in runs if r["q50_s"] is not None]),
        "q90_s": dist([r["q90_s"] for r in runs if r["q90_s"] is not None]),
        "seed_knows_after_join_s": dist([r["seed_knows_after_join_s"] for r in runs]),
        "all_in_gossip_intervals_median": round(percentile(done, 50) / g, 3) if done else None,
        "model": {
            "gossip_interval_s": g,
            "gossip_nodes": k,
            "effective_fanout": round(keff, 3),
            "retransmit_limit": limit,
            "gossip_rounds_per_member": round(limit / keff, 3),
            "sync_floor_rounds": theory.sync_push_rounds(pop, k, 2),
            "sync_floor_s": round(theory.sync_push_rounds(pop, k, 2) * g, 4),
            "random_push_rounds": round(theory.random_push_rounds(pop, k, 2), 3),
            "random_push_s": round(theory.random_push_rounds(pop, k, 2) * g, 4),
            "random_push_eff_s": round(theory.random_push_rounds(pop, keff, 2) * g, 4),
            "limited_push_rounds": limited,
            "limited_push_s": None if limited is None else round(limited * g, 4),
            "async_push_s": round(theory.async_push_time(pop, k, g, lat, 2), 4),
            "async_push_eff_s": round(theory.async_push_time(pop, keff, g, lat, 2), 4),
            "expected_missed_members": theory.expected_missed(pop, limit),
        },
        "curves": [r["curve"] for r in runs[:20]],
    }


def case_theory_detect() -> dict[str, Any]:
    """Crash at a random moment; the first ping of the victim, its first indirect ping
    (the direct probe failed) and its first suspicion, against the round-robin model."""
    out: dict[str, Any] = {}
    plan = {"lan": ((5, _seeds(400)), (20, _seeds(300)), (100, _seeds(200)),
                    (1000, _seeds(100))),
            "wan": ((20, _seeds(150)), (100, _seeds(100)))}
    for profile, sizes in plan.items():
        tm = _timing(profile)
        T = tm.probe_interval
        for n, seeds in sizes:
            sc = theory_scenario(n, profile, 1e6)
            ping, ind, susp = [], [], []
            cpu0 = time.process_time()
            rng = random.Random(f"theory-detect:{profile}:{n}")
            for seed in range(seeds):
                s = WatchedSimulation(sc, seed)
                # crash at a random moment of the probe rounds, once every member probes
                # (the first probe comes a stagger in [0, T) plus T after the start)
                t_crash = 2 * T + rng.random() * min(n - 1, 20) * T
                s.run_until(t_crash)
                v = n - 1
                s.set_watch(v)
                s.watch_pings()
                s.crash(v)
                while s.first_suspect is None and s.now < t_crash + 60 * T:
                    s.run_until(s.now + T / 4)
                if s.first_ping is not None:
                    ping.append(s.first_ping - t_crash)
                if s.first_indirect is not None:
                    ind.append(s.first_indirect - t_crash)
                if s.first_suspect is not None:
                    susp.append(s.first_suspect - t_crash)
            model = theory.first_detection(n, tm)
            out[f"{profile}_n{n}"] = {
                "n": n, "profile": profile, "seeds": seeds,
                "probe_interval_s": T, "probe_timeout_s": tm.probe_timeout,
                "cpu_seconds": round(time.process_time() - cpu0, 1),
                "loadavg": [round(x, 2) for x in os.getloadavg()],
                "first_ping_s": dist(ping),
                "first_ping_mean_s": round(statistics.mean(ping), 4) if ping else None,
                "first_probe_failure_s": dist(ind),
                "first_probe_failure_mean_s": round(statistics.mean(ind), 4) if ind else None,
                "first_suspect_s": dist(susp),
                "first_suspect_mean_s": round(statistics.mean(susp), 4) if susp else None,
                "first_suspect_sem_s": round(statistics.stdev(susp) / math.sqrt(len(susp)), 4)
                if len(susp) > 1 else None,
                "suspect_after_ping_s": dist([c - a for a, c in zip(ping, susp, strict=False)]),
                "model": {k: round(x, 4) for k, x in model.items()},
            }
    return out


NO_LIFEGUARD = "[config]\nawareness_max_multiplier = 1\nsuspicion_max_timeout_mult = 1\n"


def case_theory_lifeguard() -> dict[str, Any]:
    """10 % of 100 LAN members handle their inbox ``delay`` late for 60 s; false
    suspicions and deaths with and without Lifeguard, by whom they hit."""
    n, slow, start, until, duration = 100, 10, 10.0, 70.0, 100.0
    delays, seeds = ((1.5, 12.0), 1) if THEORY_QUICK else ((1.5, 4.0, 12.0, 24.0), 3)
    tm = _timing("lan")
    lo, hi = theory.suspicion_window(n, tm)
    out: dict[str, Any] = {
        "n": n, "starved": slow, "starved_from_s": start, "starved_until_s": until,
        "duration_s": duration, "seeds": seeds,
        "suspicion_timeout_s": {"lifeguard": [lo, hi],
                                "no_lifeguard": list(theory.suspicion_window(n, tm, False))},
        "max_probe_deadline_s": {"lifeguard": theory.max_probe_deadline(tm),
                                 "no_lifeguard": theory.max_probe_deadline(tm, False)},
        "paper_reduction": theory.PAPER_FALSE_POSITIVE_REDUCTION,
        "paper_tuned_healthy_reduction": theory.PAPER_TUNED_HEALTHY_REDUCTION,
    }
    for d in delays:
        row: dict[str, Any] = {}
        for lg in (True, False):
            sc = theory_scenario(
                n, "lan", duration, slow=slow, config="" if lg else NO_LIFEGUARD,
                events=(f'[[events]]\nat = "{start}s"\naction = "starve"\ngroup = "slow"\n'
                        f'delay = "{d}s"\nuntil = "{until}s"\n'))
            tot: dict[str, float] = {}
            cpu0 = time.process_time()
            for seed in range(seeds):
                s = WatchedSimulation(sc, seed)
                starved = set(s.group("slow"))
                r = s.run()
                c = _classify(s.verdicts, starved)
                c["false_suspicions"] = r["false_suspicions"]
                c["false_deaths"] = r["false_deaths"]
                c["health_max"] = r["health_score"]["max"]
                c["messages_per_node_per_s"] = r["messages_per_node_per_s"]
                for key, x in c.items():
                    tot[key] = tot.get(key, 0) + x
            mean = {key: round(x / seeds, 2) for key, x in tot.items()}
            mean["cpu_seconds"] = round(time.process_time() - cpu0, 1)
            row["lifeguard" if lg else "no_lifeguard"] = mean
        on, off = row["lifeguard"], row["no_lifeguard"]
        row["reduction"] = {
            key: (round(off[key] / on[key], 2) if on[key] else None if not off[key] else "inf")
            for key in ("false_suspicions", "false_deaths", "deaths_of_healthy",
                        "deaths_of_starved", "death_episodes_healthy",
                        "death_episodes_starved")
        }
        out[f"delay_{d:g}s"] = row
    out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _classify(verdicts: list[tuple[int, int, str, int, float]],
              starved: set[int]) -> dict[str, float]:
    """Count (observer, subject) suspicions and deaths of running members by the
    subject's class, and death *episodes*: distinct (subject, incarnation) declared dead
    by anyone (one false failure detection, however far it spread)."""
    c = {"suspicions_of_healthy": 0.0, "suspicions_of_starved": 0.0,
         "deaths_of_healthy": 0.0, "deaths_of_starved": 0.0,
         "deaths_by_starved_observers": 0.0}
    episodes: set[tuple[int, int]] = set()
    for o, s, kind, inc, _t in verdicts:
        cls = "starved" if s in starved else "healthy"
        if kind == "S":
            c[f"suspicions_of_{cls}"] += 1
        else:
            c[f"deaths_of_{cls}"] += 1
            episodes.add((s, inc))
            if o in starved:
                c["deaths_by_starved_observers"] += 1
    c["death_episodes_healthy"] = float(sum(1 for s, _ in episodes if s not in starved))
    c["death_episodes_starved"] = float(sum(1 for s, _ in episodes if s in starved))
    return c


def case_theory_bandwidth() -> dict[str, Any]:
    """A quiet converged LAN cluster: messages and bytes per member per second against
    the probe + push/pull model, from 10 to 10,000 members."""
    from swimpy.wire.messages import Ack
    from swimpy.wire.sizes import message_size, push_node_state_size, push_pull_header_size

    tm = _timing("lan")
    out: dict[str, Any] = {"profile": "lan"}
    # memberlist's push/pull loop waits a stagger in [0, PushPullInterval) and then the
    # scaled period P before its first exchange (state.go pushPullTrigger), then one every
    # P: from P + stagger on, a window of exactly P holds one exchange started by each
    # member, whatever its stagger
    sizes = (10, 30, 100, 300, 1000, 3000)
    for n in sizes[:4] if THEORY_QUICK else sizes:
        period = theory.push_pull_scale(tm.push_pull_interval, n)
        warm = period + tm.push_pull_interval
        span = period
        sc = theory_scenario(n, "lan", warm + span)
        cpu0 = time.process_time()
        s = WatchedSimulation(sc, 1)
        s.run_until(warm)
        p0, b0 = s.packets_sent, s.bytes_sent
        st0, sb0 = s.streams_sent, s.stream_bytes_sent
        s.run_until(warm + span)
        member_s = n * span
        name = s.names[n // 2]
        ip = bytes(int(x) for x in s.addrs[0][0].split("."))
        # pings and acks go out without a CRC (memberlist's sendMsg passes no node)
        ping = message_size(Ping(100, name, ip, s.addrs[0][1], s.names[0]))
        ack = message_size(Ack(100))
        entry = push_node_state_size(len(name), 4, s.addrs[0][1], 0, 1, 0, 6)
        header = push_pull_header_size(n, 0)
        model = theory.quiet_bandwidth(n, tm, ping, ack, entry, header)
        msgs = (s.packets_sent - p0 + s.streams_sent - st0) / member_s
        byts = (s.bytes_sent - b0 + s.stream_bytes_sent - sb0) / member_s
        out[f"n{n}"] = {
            "n": n, "measured_s": span, "warmup_s": warm,
            "cpu_seconds": round(time.process_time() - cpu0, 1),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "messages_per_node_per_s": round(msgs, 4),
            "bytes_per_node_per_s": round(byts, 2),
            "packet_bytes_per_node_per_s": round((s.bytes_sent - b0) / member_s, 2),
            "stream_bytes_per_node_per_s": round((s.stream_bytes_sent - sb0) / member_s, 2),
            "streams_per_node_per_s": round((s.streams_sent - st0) / member_s, 5),
            "mean_stream_bytes": round((s.stream_bytes_sent - sb0)
                                       / max(1, s.streams_sent - st0), 1),
            "mean_packet_bytes": round((s.bytes_sent - b0) / max(1, s.packets_sent - p0), 2),
            "sizes": {"ping": ping, "ack": ack, "entry": entry, "header": header},
            "model": {k: round(x, 4) for k, x in model.items()},
        }
    ns = [v["n"] for k, v in out.items() if k.startswith("n")]
    big = [x for x in ns if x >= 100]
    out["loglog_slope_bytes_n100_up"] = round(theory.loglog_slope(
        big, [out[f"n{x}"]["bytes_per_node_per_s"] for x in big]), 3)
    out["loglog_slope_model_n100_up"] = round(theory.loglog_slope(
        big, [out[f"n{x}"]["model"]["bytes_per_node_per_s"] for x in big]), 3)
    return out


def theory_plots(results: dict[str, Any]) -> None:
    """Figures of the theory cases: PNG and SVG in benchmarks/results/theory/, the SVGs
    also as docs/img/theory-*.svg."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("theory plots: matplotlib is not installed; skipped", file=sys.stderr)
        return
    THEORY_PLOTS.mkdir(parents=True, exist_ok=True)
    docs_img = ROOT / "docs" / "img"

    # the same results draw the same files: fixed SVG ids, no date
    matplotlib.rcParams["svg.hashsalt"] = "swimpy-theory"

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(THEORY_PLOTS / f"{name}.png", dpi=110)
        for path in (THEORY_PLOTS / f"{name}.svg", docs_img / f"theory-{name}.svg"):
            fig.savefig(path, metadata={"Date": None})
        plt.close(fig)

    grid = [round(10 ** (x / 20)) for x in range(20, 81)]  # 10 .. 10,000
    join = results.get("theory-join")
    if join:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, tm in zip(axes, (theory.LAN, theory.WAN), strict=True):
            g, k = tm.gossip_interval, tm.gossip_nodes
            keff = theory.effective_fanout(tm)
            lo, hi = THEORY_LATENCY[tm.name]
            ax.plot(grid, [theory.sync_push_rounds(n + 1, k, 2) * g for n in grid],
                    drawstyle="steps-post", label="synchronous floor")
            ax.plot(grid, [theory.random_push_rounds(n + 1, k, 2) * g for n in grid],
                    label="random push (Pittel, fan-out k)")
            ax.plot(grid, [theory.async_push_time(n + 1, k, g, (lo + hi) / 2, 2)
                           for n in grid], label="unsynchronised push (k)")
            ax.plot(grid, [theory.async_push_time(n + 1, keff, g, (lo + hi) / 2, 2)
                           for n in grid], ":", label="unsynchronised push (k + piggyback)")
            xs, med, p90 = [], [], []
            for key, v in join.items():
                if key.startswith(f"{tm.name}_n") and v["all_s"].get("n"):
                    xs.append(v["n"])
                    med.append(v["all_s"]["median"])
                    p90.append(v["all_s"]["p90"])
            ax.plot(xs, med, "ko", label="simulator: median")
            ax.plot(xs, p90, "k^", label="simulator: p90")
            ax.set_xscale("log")
            ax.set_xlabel("members n")
            ax.set_ylabel("seconds until every member lists the joiner")
            ax.set_title(f"{tm.name}: gossip every {g:g} s to {k}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        save(fig, "join")
    if join:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, tm in zip(axes, (theory.LAN, theory.WAN), strict=True):
            v = join.get(f"{tm.name}_n1000")
            if not v or not v.get("curves"):
                continue
            g, k = tm.gossip_interval, tm.gossip_nodes
            lo, hi = THEORY_LATENCY[tm.name]
            curves = v["curves"]
            steps = min(len(c) for c in curves)
            frac = [i / (steps - 1) for i in range(steps)]
            for q, style in ((10, ":"), (50, "-"), (90, ":")):
                ax.plot([percentile([c[i] for c in curves], q) for i in range(steps)], frac,
                        "k" + style, label=f"simulator: p{q} over {len(curves)} runs")
            ts = [x * g / 20 for x in range(0, 20 * 8)]
            ax.plot(ts, [theory.async_push_fraction(1001, k, g, t, (lo + hi) / 2, 2)
                         for t in ts], label="unsynchronised push (logistic, k)")
            limit = theory.retransmit_limit(tm.retransmit_mult, 1001)
            curve = theory.limited_push_curve(1001, k, limit, 2, rounds=8)
            ax.plot([r * g for r in range(len(curve))], curve, drawstyle="steps-post",
                    label=f"synchronous random push, L = {limit} (mean field)")
            ax.set_xlabel("seconds after the seed lists the joiner")
            ax.set_ylabel("fraction of the 1,000 members that list it")
            ax.set_title(f"{tm.name}: one joiner, 1,000 members")
            ax.set_xlim(0, 8 * g)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
        save(fig, "join-curve")
    det = results.get("theory-detect")
    if det:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, tm in zip(axes, (theory.LAN, theory.WAN), strict=True):
            T = tm.probe_interval
            ns = [n for n in grid if n >= 3]
            small = list(range(3, 10))
            ns = small + [n for n in ns if n >= 10]
            ax.plot(ns, [theory.first_probe_mean(n, T) for n in ns], label="model: first ping")
            ax.plot(ns, [theory.first_probe_mean(n, T) + T for n in ns],
                    label="model: first suspicion (+ probe interval)")
            ax.plot(ns, [theory.swim_detection_periods(n) * T for n in ns], "--",
                    label="SWIM, random targets: e/(e-1) periods")
            pts = [v for key, v in det.items() if key.startswith(f"{tm.name}_n")]
            for field, marker, label in (("first_ping", "o", "simulator: first ping"),
                                         ("first_suspect", "s", "simulator: first suspicion")):
                ok = [v for v in pts if v.get(f"{field}_mean_s") is not None]
                # suspicion = first ping + one probe interval in every run: one error bar
                ax.errorbar([v["n"] for v in ok], [v[f"{field}_mean_s"] for v in ok],
                            yerr=[2 * (v.get("first_suspect_sem_s") or 0) for v in ok],
                            fmt="k" + marker, capsize=3, label=label + " (mean ± 2 s.e.)")
            ax.set_xscale("log")
            ax.set_xlabel("members n")
            ax.set_ylabel("mean seconds after the crash")
            ax.set_title(f"{tm.name}: probe every {T:g} s, ack timeout {tm.probe_timeout:g} s")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best", framealpha=0.9)
        save(fig, "detect")
    lg = results.get("theory-lifeguard")
    if lg:
        rows = _delay_rows(lg)
        labels = [k.removeprefix("delay_") for k, _ in rows]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        xs = list(range(len(rows)))
        for ax, field, title in (
                (axes[0], "false_suspicions", "false suspicions (observer, member pairs)"),
                (axes[1], "death_episodes_healthy", "healthy members declared dead")):
            for off, variant, colour in ((-0.2, "lifeguard", "tab:green"),
                                         (0.2, "no_lifeguard", "tab:red")):
                ax.bar([x + off for x in xs], [v[variant][field] for _, v in rows], 0.4,
                       label=variant.replace("_", " "), color=colour)
            ax.set_xticks(xs, labels)
            ax.set_xlabel("inbox delay of the 10 starved members")
            ax.set_title(title + f", mean of {lg['seeds']} runs", fontsize=9)
            ax.grid(alpha=0.3, axis="y")
            ax.legend(fontsize=7)
        save(fig, "lifeguard")
    bw = results.get("theory-bandwidth")
    if bw:
        pts = sorted((v for k, v in bw.items() if k.startswith("n") and isinstance(v, dict)),
                     key=lambda v: v["n"])
        fig, ax = plt.subplots(figsize=(6, 4))
        ns = list(range(10, 33)) + [n for n in (round(10 ** (x / 100)) for x in range(151, 351))
                                    if n > 32]
        models = []
        for n in ns:  # the message sizes of the measured size nearest n (names grow)
            dists = [abs(math.log(v["n"] / n)) for v in pts]
            near = pts[dists.index(min(dists))]["sizes"]
            models.append(theory.quiet_bandwidth(n, theory.LAN, near["ping"], near["ack"],
                                                 near["entry"], near["header"]))
        ax.plot(ns, [m["bytes_per_node_per_s"] for m in models],
                label="model: probes + push/pull")
        ax.plot(ns, [m["probe_bytes_per_node_per_s"] for m in models], ":",
                label="model: probes (ping + ack)")
        ax.plot(ns, [m["push_pull_bytes_per_node_per_s"] for m in models], "--",
                label="model: push/pull, 2 (h + n e) / P(n)")
        ax.plot([v["n"] for v in pts], [v["bytes_per_node_per_s"] for v in pts], "ko",
                label="simulator")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("members n (lan, quiet cluster)")
        ax.set_ylabel("bytes sent per member per second")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
        save(fig, "bandwidth")


def _delay_rows(lg: dict[str, Any]) -> list[tuple[str, Any]]:
    """The ``delay_<d>s`` rows of the Lifeguard results, by increasing delay."""
    rows = [(k, v) for k, v in lg.items() if k.startswith("delay_")]
    return sorted(rows, key=lambda kv: float(kv[0].removeprefix("delay_").removesuffix("s")))


def theory_markdown(results: dict[str, Any]) -> str:
    """The tables of docs/theory.md, from the theory results file."""
    lines: list[str] = []

    def f(x: Any, fmt: str = "{:.2f}") -> str:
        return "-" if x is None else fmt.format(x)

    join = results.get("theory-join", {})
    if join:
        lines += [
            "| profile | members | runs | all know: median / p90 / max (s) | half know (s) "
            "| floor (s) | random push (s) | unsynchronised push (s), k / k + piggyback "
            "| limited mean field (s) | transmit limit L |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key in sorted(join, key=lambda k: (k.split("_")[0], len(k), k)):
            v = join[key]
            if not isinstance(v, dict) or "all_s" not in v:
                continue
            a, m = v["all_s"], v["model"]
            lines.append(
                f"| {v['profile']} | {v['n']:,} | {v['runs']} "
                f"| {f(a.get('median'))} / {f(a.get('p90'))} / {f(a.get('max'))} "
                f"| {f(v['q50_s'].get('median'))} | {f(m['sync_floor_s'])} "
                f"({m['sync_floor_rounds']} rounds) | {f(m['random_push_s'])} "
                f"| {f(m['async_push_s'])} / {f(m['async_push_eff_s'])} "
                f"| {f(m['limited_push_s'])} | {m['retransmit_limit']} |")
        lines.append("")
    det = results.get("theory-detect", {})
    if det:
        lines += [
            "| profile | members | seeds | first ping: mean / median (s) | model | "
            "first probe failure: mean (s) | model | first suspicion: mean ± s.e. / "
            "median / p90 (s) | model: mean / median / p90 | SWIM e/(e-1) periods (s) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for v in sorted((v for v in det.values() if isinstance(v, dict) and "model" in v),
                        key=lambda v: (v["profile"], v["n"])):
            m = v["model"]
            lines.append(
                f"| {v['profile']} | {v['n']:,} | {v['seeds']} "
                f"| {f(v['first_ping_mean_s'])} / {f(v['first_ping_s'].get('median'))} "
                f"| {f(m['first_ping_mean_s'])} / {f(m['first_ping_median_s'])} "
                f"| {f(v['first_probe_failure_mean_s'])} | {f(m['first_probe_failure_mean_s'])} "
                f"| {f(v['first_suspect_mean_s'])} ± {f(v['first_suspect_sem_s'])} / "
                f"{f(v['first_suspect_s'].get('median'))} / {f(v['first_suspect_s'].get('p90'))} "
                f"| {f(m['first_suspect_mean_s'])} / {f(m['first_suspect_median_s'])} / "
                f"{f(m['first_suspect_p90_s'])} | {f(m['swim_random_first_suspect_s'])} |")
        lines.append("")
    lg = results.get("theory-lifeguard", {})
    if lg:
        lines += [
            "| delay | Lifeguard | false suspicions (of healthy / starved) "
            "| false deaths (of healthy / starved) | death episodes (healthy / starved) "
            "| highest health score | msgs / member / s |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, row in _delay_rows(lg):
            for variant in ("lifeguard", "no_lifeguard"):
                c = {k: round(x) if x >= 100 else float(f"{x:.3g}") for k, x in row[variant].items()}
                lines.append(
                    f"| {key.removeprefix('delay_')} | {'on' if variant == 'lifeguard' else 'off'} "
                    f"| {c['false_suspicions']:,g} ({c['suspicions_of_healthy']:,g} / "
                    f"{c['suspicions_of_starved']:,g}) "
                    f"| {c['false_deaths']:,g} ({c['deaths_of_healthy']:,g} / "
                    f"{c['deaths_of_starved']:,g}) "
                    f"| {c['death_episodes_healthy']:g} / {c['death_episodes_starved']:g} "
                    f"| {c['health_max']:g} | {c['messages_per_node_per_s']:.1f} |")
            red = {k: "-" if x is None else "∞" if x == "inf" else f"{x}x"
                   for k, x in row["reduction"].items()}
            lines.append(
                f"| {key.removeprefix('delay_')} | ratio off / on | {red['false_suspicions']} "
                f"| {red['false_deaths']} | {red['death_episodes_healthy']} / "
                f"{red['death_episodes_starved']} | | |")
        lines.append("")
    bw = results.get("theory-bandwidth", {})
    if bw:
        lines += [
            "| members | push/pull period (s) | msgs / member / s: sim / model "
            "| bytes / member / s: sim / model | of which push/pull (sim / model) "
            "| mean push/pull stream (bytes) |",
            "|---|---|---|---|---|---|",
        ]
        for v in sorted((v for k, v in bw.items() if k.startswith("n") and isinstance(v, dict)),
                        key=lambda v: v["n"]):
            m = v["model"]
            lines.append(
                f"| {v['n']:,} | {m['push_pull_period_s']:g} "
                f"| {v['messages_per_node_per_s']:.3f} / {m['messages_per_node_per_s']:.3f} "
                f"| {v['bytes_per_node_per_s']:,.0f} / {m['bytes_per_node_per_s']:,.0f} "
                f"| {v['stream_bytes_per_node_per_s']:,.0f} / "
                f"{m['push_pull_bytes_per_node_per_s']:,.0f} | {v['mean_stream_bytes']:,.0f} |")
        lines.append("")
    return "\n".join(lines)


CASES: dict[str, Any] = {
    "crash-1000": lambda: case_crash(1000, 300.0),
    "crash-10000": lambda: case_crash(10000, 60.0),
    "crash-10000-300": lambda: case_crash(10000, 300.0),
    "crash-30000": lambda: case_crash(30000, 60.0),
    "join-1000": lambda: case_crash(1000, 60.0, "join"),
    "fidelity": case_fidelity,
    "distributions": case_distributions,
    "scenarios": case_scenarios,
    "theory-join": case_theory_join,
    "theory-detect": case_theory_detect,
    "theory-lifeguard": case_theory_lifeguard,
    "theory-bandwidth": case_theory_bandwidth,
}


def _num(x: Any, fmt: str = "{:.3g}") -> str:
    return "never" if x is None else fmt.format(x)


def markdown(results: dict[str, Any]) -> str:
    """The tables of docs/simulator.md, from the results file."""
    lines: list[str] = []
    sc = results.get("scenarios", {})
    if sc:
        lines += [
            "| scenario | members | convergence (s) | first suspect / dead / all dead (s) "
            "| all left (s) | false susp. / deaths | partition susp. / deaths "
            "| msgs / member / s | bytes / member / s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, v in sc.items():
            if not isinstance(v, dict) or "summary" not in v:
                continue
            s = v["summary"]

            def med(k: str, s: dict[str, Any] = s) -> Any:
                return s.get(k, {}).get("median")

            det = "-"
            if med("first_dead_s") is not None or med("first_suspect_s") is not None:
                det = " / ".join(_num(med(k)) for k in
                                 ("first_suspect_s", "first_dead_s", "all_dead_s"))
            left = _num(med("all_left_s")) if "all_left_s" in s else "-"
            lines.append(
                f"| {name} | {v['nodes']} ({v['profile']}) | {_num(med('convergence_s'))} "
                f"| {det} | {left} "
                f"| {_num(med('false_suspicions'), '{:g}')} / {_num(med('false_deaths'), '{:g}')} "
                f"| {_num(med('partition_suspicions'), '{:g}')} / "
                f"{_num(med('partition_deaths'), '{:g}')} "
                f"| {_num(med('messages_per_node_per_s'))} | {_num(med('bytes_per_node_per_s'))} |"
            )
        lines.append("")
    rows = [results[k] for k in ("crash-1000", "crash-10000", "crash-10000-300", "crash-30000")
            if k in results]
    if rows:
        lines += [
            "| run | wall time | CPU time | peak RSS (per member) | events | events/s "
            "| detection (first suspect / dead / all dead) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            d = next(iter(r["detections"].values()))
            cpu = f"{r['cpu_seconds']:.1f} s" if "cpu_seconds" in r else "-"
            per = (f" ({r['rss_per_member_kib']:.0f} KiB)" if "rss_per_member_kib" in r
                   else "")
            lines.append(
                f"| {r['nodes']:,} members, {r['simulated_seconds']:g} s, one crash, fast, "
                f"converged start | {r['wall_seconds']:.1f} s (setup {r['setup_seconds']:.1f} s) "
                f"| {cpu} | {r['peak_rss_mib'] / 1024:.2f} GiB{per} | {r['events']:,} "
                f"| {r['events_per_second']:,} | {d['first_suspect_s']:.2f} / "
                f"{d['first_dead_s']:.2f} / {d['all_dead_s']:.2f} s |"
            )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES),
                    help=f"comma-separated, or 'all' ({', '.join(ALL_CASES)}), or 'theory' "
                    f"({', '.join(THEORY_CASES)})")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"results file (default: {RESULTS.relative_to(ROOT)}, and "
                    f"{THEORY_RESULTS.relative_to(ROOT)} for the theory cases)")
    ap.add_argument("--tree", type=Path,
                    help="measure the swimpy of this checkout (default: this one)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--markdown", action="store_true",
                    help="print the docs tables from the results file and exit")
    ap.add_argument("--theory-plots", action="store_true",
                    help="redraw the theory figures from the theory results file and exit")
    ap.add_argument("--theory-markdown", action="store_true",
                    help="print the tables of docs/theory.md from the theory results and exit")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads((args.out or RESULTS).read_text())))
        return 0
    if args.theory_markdown:
        print(theory_markdown(json.loads((args.out or THEORY_RESULTS).read_text())))
        return 0
    if args.theory_plots:
        theory_plots(json.loads((args.out or THEORY_RESULTS).read_text()))
        return 0
    if args.child:
        print(json.dumps(CASES[args.child]()))
        return 0
    cases = (ALL_CASES if args.cases == "all" else THEORY_CASES if args.cases == "theory"
             else tuple(args.cases.split(",")))
    env = dict(os.environ)
    if args.tree is not None:
        env["SWIMPY_BENCH_TREE"] = str(args.tree.resolve())
    for case in cases:
        if case not in CASES:
            ap.error(f"unknown case {case!r}; choose from "
                     f"{', '.join(ALL_CASES + THEORY_CASES)}")
        print(f"running {case} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", case],
                              capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        res = json.loads(proc.stdout)
        res["bench_wall_seconds"] = round(time.perf_counter() - t0, 1)
        res["machine"] = machine()
        res["date"] = time.strftime("%Y-%m-%d")
        out = args.out or (THEORY_RESULTS if case in THEORY_CASES else RESULTS)
        # read just before writing: other runs may have added cases to the file meanwhile
        results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
        results[case] = res
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        brief = {k: res[k] for k in ("wall_seconds", "peak_rss_mib") if k in res}
        print(f"  done in {res['bench_wall_seconds']} s {brief}", file=sys.stderr, flush=True)
    if any(c in THEORY_CASES for c in cases) and args.out is None:
        theory_plots(json.loads(THEORY_RESULTS.read_text()))
    return 0

if __name__ == "__main__":
    sys.exit(main())
