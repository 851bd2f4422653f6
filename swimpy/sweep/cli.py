"""``swimpy sweep SPEC --out results.jsonl``: the command line of a sweep (click).

Only click is imported here; the sweep machinery (simulator, tqdm, process pools, Dask,
matplotlib) is imported when the command runs, so ``swimpy --help`` stays quick.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["command"]

_HELP = (
    "Run a parameter sweep: every combination of the sweep file's axes, with every seed, "
    "is one simulation; results stream to the --out file (JSON lines) and a rerun skips "
    "what is already there, so an interrupted sweep resumes. Prints a summary per point "
    "(median, p90, p99). SPEC is a sweep file or the name of a shipped sweep (see "
    "--list); docs/sweeps.md describes the format."
)


@click.command("sweep", help=_HELP, short_help="Run a parameter sweep of simulations.")
@click.argument("spec", required=False, metavar="[SPEC]")
@click.option("--list", "list_", is_flag=True, help="list the shipped sweeps and exit")
@click.option("--out", "out", metavar="PATH",
              help="results file, one JSON line per task (resumed if it exists)")
@click.option("--jobs", type=click.IntRange(min=1), metavar="N",
              help="local processes (default: every core; 1 runs in this process); "
                   "with --dask local: the number of workers")
@click.option("--dask", "dask", metavar="ADDRESS",
              help="run on the Dask scheduler at ADDRESS (tcp://host:8786), or 'local' "
                   "for a LocalCluster (pip install 'swimpy[dask]')")
@click.option("--plot", "plot_path", metavar="PATH",
              help="write the trade-off plots (.png, .svg or .pdf)")
@click.option("--json", "json_path", metavar="PATH",
              help="write the summary as JSON to PATH ('-' = stdout, instead of the table)")
@click.option("--dry-run", is_flag=True,
              help="show the points and how many tasks are done; run nothing")
@click.option("--progress", "progress_on", is_flag=True,
              help="always show a progress bar on stderr")
@click.option("--no-progress", "progress_off", is_flag=True, help="never show a progress bar")
@click.pass_context
def command(
    ctx: click.Context,
    spec: str | None,
    list_: bool,
    out: str | None,
    jobs: int | None,
    dask: str | None,
    plot_path: str | None,
    json_path: str | None,
    dry_run: bool,
    progress_on: bool,
    progress_off: bool,
) -> None:
    if progress_on and progress_off:
        raise click.UsageError("--progress and --no-progress are mutually exclusive", ctx)
    if dask is not None and jobs is not None and dask != "local":
        raise click.UsageError(
            "--jobs and --dask ADDRESS are mutually exclusive (the cluster has its workers; "
            "--jobs sets the workers of --dask local only)", ctx)
    progress = True if progress_on else False if progress_off else None
    try:
        _sweep(ctx, spec, list_=list_, out=out, jobs=jobs, dask=dask, plot_path=plot_path,
               json_path=json_path, dry_run=dry_run, progress=progress)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        ctx.exit(1)


def _check_out(option: str, path: str) -> None:
    from swimpy.cli import CommandError

    p = Path(path)
    if p.is_dir():
        raise CommandError(f"{option} {path}: is a directory")
    if not p.parent.is_dir():
        what = "is not a directory" if p.parent.exists() else "does not exist"
        raise CommandError(f"{option} {path}: the directory {p.parent} {what} (it is not created)")
    target = p if p.exists() else p.parent
    if not os.access(target, os.W_OK):
        raise CommandError(f"{option} {path}: not writable")


def _sweep(
    ctx: click.Context,
    spec_ref: str | None,
    *,
    list_: bool,
    out: str | None,
    jobs: int | None,
    dask: str | None,
    plot_path: str | None,
    json_path: str | None,
    dry_run: bool,
    progress: bool | None,
) -> None:
    from swimpy.cli import CommandError
    from swimpy.sweep.executors import ExecutorError, TaskError, make_executor
    from swimpy.sweep.plot import PlotError, check_plot_path, plot
    from swimpy.sweep.runner import run_sweep
    from swimpy.sweep.spec import SweepError, list_sweeps, load_spec
    from swimpy.sweep.store import ResultStore, StoreError
    from swimpy.sweep.summary import format_table
    from swimpy.sweep.tasks import expand

    if list_:
        for name in list_sweeps():
            click.echo(f"{name:24s} {load_spec(name).description}")
        return
    if not spec_ref:
        raise click.UsageError("Missing argument 'SPEC' (or --list).", ctx)
    if out is None and not dry_run:
        raise click.UsageError("Missing option '--out PATH': the results file.", ctx)
    # Everything that can be refused is refused before anything runs.
    try:
        spec = load_spec(spec_ref)
        points, tasks = expand(spec)
    except SweepError as exc:
        raise CommandError(str(exc)) from None
    if out is not None:
        _check_out("--out", out)
    if json_path is not None and json_path != "-":
        _check_out("--json", json_path)
    if plot_path is not None:
        try:
            check_plot_path(plot_path)
        except PlotError as exc:
            raise CommandError(f"--plot {exc}") from None
        _check_out("--plot", plot_path)

    done = 0
    if out is not None and Path(out).exists():
        try:
            with ResultStore(out) as store:
                done = sum(1 for t in tasks if t.key in store)
        except StoreError as exc:
            raise CommandError(str(exc)) from None
    plan = (f"sweep {spec.name}: {len(points)} points x {len(spec.seeds)} seeds = "
            f"{len(tasks)} tasks; {done} already in {out}" if out else
            f"sweep {spec.name}: {len(points)} points x {len(spec.seeds)} seeds = "
            f"{len(tasks)} tasks")
    if dry_run:
        click.echo(plan)
        for p in points:
            click.echo(f"  {p.index:4d}  {p.label()}")
        return
    assert out is not None
    try:
        executor = make_executor(jobs, dask)
    except ExecutorError as exc:
        raise CommandError(str(exc)) from None
    click.echo(plan + (f"; running {len(tasks) - done}" if done < len(tasks) else
                       ": nothing to run"), err=True)
    try:
        result = run_sweep(spec, out, executor, progress=progress)
    except (ExecutorError, StoreError) as exc:
        raise CommandError(str(exc)) from None
    except TaskError as exc:
        raise CommandError(f"{exc}; the results so far are in {out}: run again to resume") \
            from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; the finished tasks are in {out}: run the same command to "
                   "resume", err=True)
        ctx.exit(130)

    notes: list[str] = []
    if result.ran:
        rate = result.ran / result.wall_seconds if result.wall_seconds > 0 else 0.0
        notes.append(f"ran {result.ran} tasks in {result.wall_seconds:.1f} s "
                     f"({rate:.2f}/s) on {result.executor}; results in {out}")
    if result.foreign:
        notes.append(f"{result.foreign} other record(s) in {out} belong to no task of this "
                     "sweep (another sweep, or an earlier version of its scenario): ignored")
    summary: dict[str, Any] = dict(result.summary)
    summary["run"] = {"tasks": len(tasks), "ran": result.ran, "reused": result.reused,
                      "wall_seconds": result.wall_seconds, "executor": result.executor}
    errors: list[str] = []
    if json_path is not None and json_path != "-":
        try:
            Path(json_path).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            notes.append(f"summary JSON written to {json_path}")
        except OSError as exc:
            errors.append(f"--json {json_path}: cannot write: {exc.strerror or exc}")
    if plot_path is not None:
        try:
            notes.append(f"plot written to {plot(summary, plot_path)}")
        except PlotError as exc:
            errors.append(f"--plot {exc}")
        except OSError as exc:
            errors.append(f"--plot {plot_path}: cannot write: {exc.strerror or exc}")
    if json_path == "-":
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_table(summary))
    for note in notes:
        click.echo(note, err=True)
    if errors:
        raise CommandError("; ".join(errors))
