"""The simulator's prediction for a real cluster: a crash at the same N, the lan profile and
a loopback latency model, over many seeds. Two models: ``cycle`` repeats the benchmark's
kill cycle (the measured member is killed just after another one was crashed, detected
and restarted), ``plain`` crashes a member of a cluster that has been quiet since it
started, as the shipped ``crash`` scenario does."""

from __future__ import annotations

import statistics
from typing import Any

from cluster.stats import summarize
from swimpy import sim

#: one-way delay of a datagram between two processes on loopback, including the time
#: the receiver's event loop takes to read it (an assumption: tens of microseconds on an
#: idle machine, more on a busy one; a millisecond either way is small against the
#: 0.5 s probe timeout)
LOOPBACK_LOW = "0.05ms"
LOOPBACK_HIGH = "0.25ms"

#: the benchmark's kill cycle: a member (index 1) crashed, detected and restarted; the
#: next one (index 2) is killed shortly after the restarted member is back everywhere
#: (the benchmark kills 0-1 s after re-convergence, itself 0.3-1 s after the restart)
CYCLE_RESTART_S = 17.0
CYCLE_KILL_S = 18.3
PLAIN_KILL_S = 10.0

SCENARIO = """\
name = "bench-cluster-crash"
description = "{description}"
nodes = {nodes}
profile = "lan"
duration = "{duration}s"

[start]
mode = "converged"

[network]
latency = {{ dist = "uniform", low = "{low}", high = "{high}" }}
{events}"""

PLAIN_EVENTS = """
[[events]]
at = "{kill}s"
action = "crash"
node = 2
"""

CYCLE_EVENTS = """
[[events]]
at = "10s"
action = "crash"
node = 1

[[events]]
at = "{restart}s"
action = "restart"
node = 1

[[events]]
at = "{kill}s"
action = "crash"
node = 2
"""

#: the models: "cycle" mirrors the benchmark's kill-restart cycle, "plain" crashes one
#: member of a cluster that has been quiet since it started (the shipped crash scenario)
MODELS = ("cycle", "plain")


def kill_time(model: str) -> float:
    return CYCLE_KILL_S if model == "cycle" else PLAIN_KILL_S


def scenario_text(nodes: int, model: str = "cycle", low: str = LOOPBACK_LOW,
                  high: str = LOOPBACK_HIGH) -> str:
    if model == "cycle":
        events = CYCLE_EVENTS.format(restart=CYCLE_RESTART_S, kill=CYCLE_KILL_S)
        description = ("a member is crashed and restarted; another is killed 1.3 s after "
                       "the restart, on loopback")
    elif model == "plain":
        events = PLAIN_EVENTS.format(kill=PLAIN_KILL_S)
        description = "one member of a converged loopback cluster is killed at 10 s"
    else:
        raise ValueError(f"model {model!r}: expected one of {', '.join(MODELS)}")
    return SCENARIO.format(nodes=nodes, low=low, high=high, events=events,
                           duration=int(kill_time(model)) + 30, description=description)


def predict(nodes: int, seeds: int, first_seed: int = 1, model: str = "cycle"
            ) -> dict[str, Any]:
    """Time from the measured crash (member 2's) to the first suspicion, first dead and
    all dead, over ``seeds`` runs (seeds ``first_seed ..``)."""
    sc = sim.parse_scenario(scenario_text(nodes, model), source="bench_cluster")
    at = kill_time(model)
    all_dead: list[float] = []
    first_dead: list[float] = []
    first_suspect: list[float] = []
    spans: list[float] = []
    false = 0
    for k in range(seeds):
        res = sim.run(sc, seed=first_seed + k, progress=False)
        false += int(res["false_suspicions"])
        for det in res["detections"].values():
            if det.get("at_s") != at:  # the cycle's first crash is not the one measured
                continue
            if det.get("all_dead_s") is not None:
                all_dead.append(float(det["all_dead_s"]))
            if det.get("first_dead_s") is not None:
                first_dead.append(float(det["first_dead_s"]))
            if det.get("first_suspect_s") is not None:
                first_suspect.append(float(det["first_suspect_s"]))
                if det.get("all_dead_s") is not None:
                    spans.append(float(det["all_dead_s"]) - float(det["first_suspect_s"]))
    return {
        "nodes": nodes,
        "seeds": seeds,
        "model": model,
        "latency": {"dist": "uniform", "low": LOOPBACK_LOW, "high": LOOPBACK_HIGH},
        "all_dead_s": summarize(all_dead),
        "first_dead_s": summarize(first_dead),
        "first_suspect_s": summarize(first_suspect),
        "false_suspicions": false,
        "all_dead_values": [round(v, 4) for v in all_dead],
        "suspect_to_all_dead_values": [round(v, 4) for v in spans],
        "median_all_dead_s": statistics.median(all_dead) if all_dead else None,
    }
