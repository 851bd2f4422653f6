"""Running sweeps: the same per-task results on every executor and in any completion order;
an interrupted sweep resumes, a finished one reruns nothing, an edited scenario is never
reused; the results file survives a torn last line and refuses a second writer."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from swimpy.sim import load_scenario
from swimpy.sim import run as sim_run
from swimpy.sweep.executors import (
    DaskExecutor,
    ProcessExecutor,
    SequentialExecutor,
    TaskError,
)
from swimpy.sweep.runner import SweepRun, run_sweep
from swimpy.sweep.spec import load_spec, parse_spec
from swimpy.sweep.store import ResultStore, StoreError
from swimpy.sweep.tasks import Task, expand, run_task

#: 4 points x 2 seeds of a small crash (10-20 members, 20 s): about 0.1 s each.
SPEC = """
scenario = "crash"
seeds = 2
[fixed]
duration = "20s"
[axes]
nodes = [10, 20]
suspicion_mult = [2, 4]
"""


def deterministic(result: dict[str, Any]) -> dict[str, Any]:
    """A result without its wall-clock time (the only field that measures the machine)."""
    return {k: v for k, v in result.items() if k != "wall_seconds"}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> SweepRun:
    """The sweep run sequentially, in task order."""
    spec = parse_spec(SPEC, source="s.toml")
    out = tmp_path_factory.mktemp("ref") / "r.jsonl"
    done = run_sweep(spec, out, SequentialExecutor())
    assert (done.ran, done.reused, done.complete) == (8, 0, True)
    assert [r["key"] for r in lines(out)] == [t.key for t in done.tasks]
    return done


@pytest.fixture(scope="module")
def reference(reference_run: SweepRun) -> dict[str, dict[str, Any]]:
    """Every task's result, without wall times."""
    return {k: deterministic(v) for k, v in reference_run.results.items()}


def test_a_task_is_what_swimpy_sim_json_gives() -> None:
    _, tasks = expand(parse_spec(SPEC, source="s.toml"))
    t = tasks[3]  # nodes 10, suspicion_mult 4, seed 2
    sc = load_scenario("crash").with_overrides(nodes=t.point["nodes"], duration=20.0)
    sc = replace(sc, config={**sc.config, "suspicion_mult": t.point["suspicion_mult"]})
    assert deterministic(sim_run(sc, seed=t.seed)) == deterministic(run_task(t))


def test_the_process_pool_gives_the_sequential_results(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    out = tmp_path / "r.jsonl"
    done = run_sweep(parse_spec(SPEC, source="s.toml"), out, ProcessExecutor(2))
    assert done.ran == 8
    assert {k: deterministic(v) for k, v in done.results.items()} == reference
    assert {r["key"]: deterministic(r["result"]) for r in lines(out)} == reference


def test_a_dask_local_cluster_gives_the_sequential_results(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    pytest.importorskip("distributed")
    out = tmp_path / "r.jsonl"
    ex = DaskExecutor("local", workers=2, processes=False)
    done = run_sweep(parse_spec(SPEC, source="s.toml"), out, ex)
    assert done.ran == 8 and done.executor.startswith("Dask LocalCluster, 2 workers")
    assert {k: deterministic(v) for k, v in done.results.items()} == reference


class Reversed(SequentialExecutor):
    """Finishes tasks in the reverse order."""

    def run(self, tasks: Any) -> Any:
        yield from super().run(list(reversed(tasks)))


def test_completion_order_changes_nothing_but_the_file_order(
    tmp_path: Path, reference_run: SweepRun, reference: dict[str, dict[str, Any]]
) -> None:
    spec = parse_spec(SPEC, source="s.toml")
    rev = run_sweep(spec, tmp_path / "b.jsonl", Reversed())
    assert [r["key"] for r in lines(tmp_path / "b.jsonl")] == [
        t.key for t in reversed(reference_run.tasks)]
    assert {k: deterministic(v) for k, v in rev.results.items()} == reference
    assert _no_wall(rev.summary) == _no_wall(reference_run.summary)


def _no_wall(summary: dict[str, Any]) -> Any:
    return [{k: v for k, v in p["metrics"].items() if k != "wall_seconds"}
            for p in summary["points"]]


def stop_after(n: int) -> Any:
    calls = {"n": 0}

    def fn(task: Task) -> dict[str, Any]:
        if calls["n"] == n:
            raise KeyboardInterrupt
        calls["n"] += 1
        return run_task(task)

    return fn


def test_an_interrupted_sweep_resumes_and_a_rerun_skips_everything(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    spec = parse_spec(SPEC, source="s.toml")
    out = tmp_path / "r.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, SequentialExecutor(stop_after(3)))
    assert len(lines(out)) == 3
    ran: list[int] = []
    resumed = run_sweep(spec, out, SequentialExecutor(),
                        on_result=lambda t, r: ran.append(t.index))
    assert (resumed.ran, resumed.reused) == (5, 3) and ran == [3, 4, 5, 6, 7]
    assert {k: deterministic(v) for k, v in resumed.results.items()} == reference

    def fail(task: Task) -> dict[str, Any]:
        raise AssertionError("a finished sweep runs nothing")

    again = run_sweep(spec, out, SequentialExecutor(fail))
    assert (again.ran, again.reused, again.complete) == (0, 8, True)
    assert len(lines(out)) == 8


def test_an_edited_scenario_is_never_reused(tmp_path: Path) -> None:
    scen = tmp_path / "mine.toml"
    scen.write_text('nodes = 10\nduration = "20s"\n[[events]]\nat = "5s"\naction = "crash"\n'
                    "node = 0\n")
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('scenario = "mine.toml"\nseeds = 2\n[axes]\nsuspicion_mult = [2, 4]\n')
    out = tmp_path / "r.jsonl"
    first = run_sweep(load_spec(sweep), out, SequentialExecutor())
    assert first.ran == 4
    # A comment or layout change is no change: the scenario is compared as data.
    scen.write_text("# a comment\n" + scen.read_text())
    assert run_sweep(load_spec(sweep), out, SequentialExecutor()).ran == 0
    # A changed value is: every task runs again, the old records stay but are ignored.
    scen.write_text(scen.read_text().replace("nodes = 10", "nodes = 12"))
    edited = run_sweep(load_spec(sweep), out, SequentialExecutor())
    assert (edited.ran, edited.reused, edited.foreign) == (4, 0, 4)
    assert all(r["nodes"] == 12 for r in edited.results.values())
    assert len(lines(out)) == 8


def test_a_failing_task_names_itself_and_keeps_the_results_so_far(tmp_path: Path) -> None:
    spec = parse_spec(SPEC, source="s.toml")

    def boom(task: Task) -> dict[str, Any]:
        if task.index == 2:
            raise ValueError("bad luck")
        return run_task(task)

    with pytest.raises(TaskError, match=r"task 2 \(seed 1, point .*nodes.*: 10.*\) failed: "
                                        "ValueError: bad luck"):
        run_sweep(spec, tmp_path / "r.jsonl", SequentialExecutor(boom))
    assert len(lines(tmp_path / "r.jsonl")) == 2


def test_a_torn_last_line_is_dropped_and_a_second_writer_refused(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text('{"key": "a", "result": {}}\nnot json\n{"key": "b", "res')
    with ResultStore(out) as store:
        assert set(store.records) == {"a"} and store.bad_lines == 1 and store.dropped_partial
        with pytest.raises(StoreError, match="another sweep is writing this file"):
            ResultStore(out).open()
        store.append({"key": "c", "result": {}})
    assert out.read_text() == '{"key": "a", "result": {}}\nnot json\n{"key":"c","result":{}}\n'


def fail_first_sleep_others(task: Task) -> dict[str, Any]:
    """Picklable for the process pool: task 0 fails at once, the others take a minute."""
    import time

    if task.index == 0:
        raise ValueError("bad luck")
    time.sleep(60)
    raise AssertionError("not reached: the failure stops the running tasks")


def test_a_failing_task_on_the_pool_stops_the_running_ones(tmp_path: Path) -> None:
    import time

    spec = parse_spec(SPEC, source="s.toml")
    t0 = time.perf_counter()
    with pytest.raises(TaskError, match=r"task 0 .*ValueError: bad luck"):
        run_sweep(spec, tmp_path / "r.jsonl", ProcessExecutor(2, fail_first_sleep_others))
    assert time.perf_counter() - t0 < 30
