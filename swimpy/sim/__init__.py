"""Deterministic cluster simulator: the real ``swimpy.core.Engine`` over a modelled network.

No trio, no sockets, no wall clock inside a run: events are ordered by (virtual time,
sequence) and every random choice comes from generators seeded by the run's seed, so a
scenario and a seed give the same trace (``trace_sha256``) on any machine.

>>> from swimpy import sim
>>> result = sim.run("crash", seed=1, nodes=20)            # doctest: +SKIP
>>> result["detections"]                                   # doctest: +SKIP

See ``docs/simulator.md`` for the scenario format and the meaning of every result field.
"""

from __future__ import annotations

from swimpy.sim.runner import percentile, run, summarize
from swimpy.sim.scenario import (
    Scenario,
    ScenarioError,
    list_scenarios,
    load_scenario,
    parse_scenario,
)
from swimpy.sim.simulation import Simulation

__all__ = [
    "Scenario",
    "ScenarioError",
    "Simulation",
    "list_scenarios",
    "load_scenario",
    "parse_scenario",
    "percentile",
    "run",
    "summarize",
]
