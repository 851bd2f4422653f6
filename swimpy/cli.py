"""The ``swimpy`` command line (click).

``swimpy sim SCENARIO`` runs a simulation (``docs/simulator.md``); ``swimpy sim --list``
lists the scenarios shipped with the package. ``swimpy sweep SPEC`` runs a parameter sweep
of simulations (``swimpy.sweep.cli``, ``docs/sweeps.md``). ``swimpy keygen`` prints a new encryption
key. The agent's commands (``swimpy.agent.cli.COMMANDS``) are added to the group as they
are written.

Only click and the standard library are imported here: the simulator and the runtime are
imported inside the commands that need them, so ``swimpy --help`` stays quick.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

import click

from swimpy import __version__
from swimpy.agent.cli import COMMANDS as _AGENT_COMMANDS
from swimpy.demo import command as _demo_command
from swimpy.sweep.cli import command as _sweep_command

__all__ = ["CommandError", "check_output_path", "main"]

#: bytes in a key from ``swimpy keygen``: AES-256, the size ``serf keygen`` makes
KEY_SIZE = 32


class CommandError(click.ClickException):
    """A failure reported as one line, ``swimpy sim: error: MESSAGE``, on stderr, with exit
    status 2 (the format the command line had before click, kept for scripts and docs)."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        ctx = click.get_current_context(silent=True)
        self.command_path = ctx.command_path if ctx is not None else "swimpy"

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"{self.command_path}: error: {self.format_message()}", file=file, err=True)


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``--duration``: seconds > 0 from a number of seconds or a duration such as ``5m``."""
    if value is None:
        return None
    from swimpy.profiles import ConfigError, parse_duration

    seconds: float | None
    try:
        seconds = parse_duration(float(value), "--duration")
    except ValueError:
        seconds = None
    try:
        if seconds is None:
            seconds = parse_duration(value, "--duration")
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    if seconds <= 0:
        raise click.BadParameter(f"{value!r} is not > 0", ctx, param)
    return seconds


@click.group(
    name="swimpy",
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="SWIM + Lifeguard membership, wire-compatible with HashiCorp memberlist.",
)
@click.version_option(__version__, "--version", prog_name="swimpy",
                      message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Entry point of the ``swimpy`` console script."""
    if ctx.invoked_subcommand is None:
        # `swimpy` alone: the help, and exit status 2 (as before click), on any click.
        click.echo(ctx.get_help())
        ctx.exit(2)


def check_output_path(option: str, path: str) -> None:
    """Refuse, before a run, an output file that could not be written: its directory must
    exist (it is never created) and take a new file, and the path must not be a directory.
    Raises :class:`CommandError` with one line naming ``option`` and ``path``."""
    p = Path(path)
    if p.is_dir():
        raise CommandError(f"{option} {path}: is a directory")
    parent = p.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise CommandError(f"{option} {path}: the directory {parent} {what} (it is not created)")
    if p.exists() and not os.access(p, os.W_OK):
        raise CommandError(f"{option} {path}: the file is not writable")
    try:
        # A real attempt: os.access says yes to root, and not on a read-only file system.
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise CommandError(
            f"{option} {path}: cannot write in {parent}: {exc.strerror or exc}"
        ) from None


def _fmt(x: float | None, unit: str = " s") -> str:
    return "never" if x is None else f"{x:.3f}{unit}"


def _names(members: list[str], limit: int = 12) -> str:
    """``members`` (names and ``first..last`` runs) on one line, shortened past ``limit``."""
    if len(members) <= limit:
        return ", ".join(members) or "none"
    return ", ".join(members[:limit]) + f", ... ({len(members) - limit} more in the JSON)"


def _describe_pick(p: dict[str, Any]) -> str:
    """One scenario event as carried out: what it picked from, and which members."""
    head = f"{p['at_s']:g} s {p['action']}"
    if "node" in p:
        head += f" node {p['node']}"
    elif "count" in p:
        head += (f" {p['count']} at random of {p['eligible']} eligible in group "
                 f"{p.get('group', 'all')}")
        if p["eligible"] < p["count"]:
            head += f" (only {p['eligible']}: all of them)"
    elif "group" in p:
        head += f" group {p['group']}"
    if "between" in p:
        head += " between " + " and ".join(p["between"])
        if len(p["between"]) == 1:
            head += " and everyone else"
    elif "from" in p:
        head += f" from {p['from']} to {p['to']}"
    if "id" in p:
        head += f" (id {p['id']})"
    if "sides" in p:
        a, b = p["sides"]
        return f"{head}: {_names(a, 6)} | {_names(b, 6)}"
    if "members" in p:
        return f"{head}: {_names(p['members'])}"
    return head


def _describe_groups_and_picks(r: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    groups = r.get("groups") or {}
    if groups:
        lines.append("  groups: " + "; ".join(
            f"{g} = {_names(m, 6)}" for g, m in groups.items()))
    picks = r.get("events") or []
    if picks:
        lines.append("  events (members picked):")
        lines += [f"    {_describe_pick(p)}" for p in picks]
    return lines


def _describe(r: dict[str, Any]) -> str:
    lines = [
        f"scenario {r['scenario']}: {r['nodes']} members, {r['profile']} profile, "
        f"{r['fidelity']} fidelity, seed {r['seed']}",
        f"  simulated {r['simulated_seconds']:g} s in {r['wall_seconds']:.2f} s of wall time",
        f"  convergence: {_fmt(r['convergence_s'])} after the last disruption "
        f"(at {r['last_disruption_s']:g} s)",
        *_describe_groups_and_picks(r),
    ]
    dets = r["detections"]
    if dets:
        lines.append("  detections (seconds after the event):")
        for name, d in dets.items():
            if d.get("applicable") is False:
                verb = "crashed" if d["kind"] == "crash" else "left"
                lines.append(
                    f"    {name} {verb} at {d['at_s']:g} s: not applicable, nobody was left "
                    "to detect it (no running member saw it)"
                )
            elif d["kind"] == "crash":
                lines.append(
                    f"    {name} crashed at {d['at_s']:g} s: first suspect "
                    f"{_fmt(d['first_suspect_s'])}, first dead {_fmt(d['first_dead_s'])}, "
                    f"all dead {_fmt(d['all_dead_s'])}"
                )
            else:
                lines.append(
                    f"    {name} left at {d['at_s']:g} s: first left "
                    f"{_fmt(d['first_left_s'])}, all left {_fmt(d['all_left_s'])}"
                )
            if "restarted_s" in d:
                lines[-1] += f" (restarted after {d['restarted_s']:.3f} s)"
    lines += [
        f"  false suspicions {r['false_suspicions']}, false deaths {r['false_deaths']}; "
        f"caused by partitions: {r['partition_suspicions']} suspicions, "
        f"{r['partition_deaths']} deaths",
        f"  traffic per member: {r['messages_per_node_per_s']:g} messages/s, "
        f"{r['bytes_per_node_per_s']:g} bytes/s ({r['bytes_mode']})",
        f"  health score: max {r['health_score']['max']}, mean {r['health_score']['mean']:g}",
        f"  trace_sha256 {r['trace_sha256']}",
    ]
    return "\n".join(lines)


def _describe_summary(res: dict[str, Any]) -> str:
    runs = res["runs"]
    first = runs[0]
    lines = [
        f"scenario {first['scenario']}: {first['nodes']} members, {first['profile']} profile, "
        f"{len(runs)} runs (seeds {first['seed']}..{runs[-1]['seed']})",
    ]
    if all(x.get("groups") == first.get("groups") for x in runs) and first.get("groups"):
        lines += _describe_groups_and_picks({"groups": first["groups"]})
    # Every run carries out the same events in the same order; random picks differ by seed.
    picks = [x.get("events") or [] for x in runs]
    if picks[0] and all(len(p) == len(picks[0]) for p in picks):
        lines.append("  events (members picked):")
        for j, p in enumerate(picks[0]):
            if all(ps[j] == p for ps in picks):
                lines.append(f"    {_describe_pick(p)}")
            else:
                lines += [f"    seed {x['seed']}: {_describe_pick(ps[j])}"
                          for x, ps in zip(runs, picks, strict=True)]
    n_a = sum(d.get("applicable") is False for x in runs for d in x["detections"].values())
    if n_a:
        lines.append(f"  {n_a} detection(s) not applicable (nobody was left to detect them), "
                     "left out of the summary")
    lines.append(
        f"  {'metric':28s} {'median':>12s} {'p99':>12s} {'n':>6s} {'never':>6s}",
    )
    for k, v in res["summary"].items():
        med = "-" if v["median"] is None else f"{v['median']:.4g}"
        p99 = "-" if v["p99"] is None else f"{v['p99']:.4g}"
        lines.append(f"  {k:28s} {med:>12s} {p99:>12s} {v['n']:>6d} {v['nulls']:>6d}")
    return "\n".join(lines)


_SIM_HELP = (
    "Run a scenario in the deterministic simulator: the real swimpy engine over a "
    "modelled network, in virtual time. SCENARIO is a TOML file or the name of a "
    "scenario shipped with swimpy (see --list)."
)


@main.command(help=_SIM_HELP, short_help="Run a deterministic cluster simulation.")
@click.argument("scenario", required=False, metavar="[SCENARIO]")
@click.option("--list", "list_", is_flag=True, help="list the shipped scenarios and exit")
@click.option("--seed", type=click.IntRange(min=0), metavar="N",
              help="seed of the (first) run (default: the file's)")
@click.option("--runs", type=click.IntRange(min=1), default=1, show_default=True, metavar="K",
              help="run K seeds (N .. N+K-1) and summarise (median, p99)")
@click.option("--nodes", type=click.IntRange(min=1), metavar="N",
              help="cluster size (groups are fractions)")
@click.option("--profile", type=click.Choice(["lan", "wan", "local"]),
              help="memberlist profile")
@click.option("--duration", callback=_duration, metavar="D",
              help="simulated time, e.g. 300s or 5m")
@click.option("--fidelity", type=click.Choice(["fast", "wire"]),
              help="fast: pass messages directly; wire: encode every packet (exact bytes)")
@click.option("--json", "json_path", metavar="PATH",
              help="write the JSON result to PATH ('-' = stdout)")
@click.option("--plot", "plot_path", metavar="PATH",
              help="write a convergence plot (.png or .svg)")
# Two flags rather than click's `--progress/--no-progress`, so that giving both is refused.
@click.option("--progress", "progress_on", is_flag=True,
              help="always show a progress bar on stderr")
@click.option("--no-progress", "progress_off", is_flag=True, help="never show a progress bar")
@click.pass_context
def sim(
    ctx: click.Context,
    scenario: str | None,
    list_: bool,
    seed: int | None,
    runs: int,
    nodes: int | None,
    profile: str | None,
    duration: float | None,
    fidelity: str | None,
    json_path: str | None,
    plot_path: str | None,
    progress_on: bool,
    progress_off: bool,
) -> None:
    if progress_on and progress_off:
        raise click.UsageError("--progress and --no-progress are mutually exclusive", ctx)
    progress = True if progress_on else False if progress_off else None
    try:
        _sim(ctx, scenario, list_=list_, seed=seed, runs=runs, nodes=nodes, profile=profile,
             duration=duration, fidelity=fidelity, json_path=json_path, plot_path=plot_path,
             progress=progress)
    except BrokenPipeError:
        # `swimpy sim ... | head`: stop quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        ctx.exit(1)


def _sim(
    ctx: click.Context,
    scenario: str | None,
    *,
    list_: bool,
    seed: int | None,
    runs: int,
    nodes: int | None,
    profile: str | None,
    duration: float | None,
    fidelity: str | None,
    json_path: str | None,
    plot_path: str | None,
    progress: bool | None,
) -> None:
    from swimpy import sim as simulator
    from swimpy.sim.plot import PlotError, check_plot_path, plot

    if list_:
        for name in simulator.list_scenarios():
            sc = simulator.load_scenario(name)
            click.echo(f"{name:24s} {sc.description}")
        return
    if not scenario:
        raise click.UsageError("Missing argument 'SCENARIO' (or --list).", ctx)
    # Everything that can be refused is refused before the run: the scenario (with the
    # overrides: member indices and counts against --nodes) and the output paths.
    try:
        sc = simulator.load_scenario(scenario).with_overrides(
            nodes=nodes, profile=profile, duration=duration, fidelity=fidelity
        )
    except simulator.ScenarioError as exc:
        raise CommandError(str(exc)) from None
    if plot_path is not None:
        try:
            check_plot_path(plot_path)
        except PlotError as exc:
            raise CommandError(f"--plot {exc}") from None
        check_output_path("--plot", plot_path)
    if json_path is not None and json_path != "-":
        check_output_path("--json", json_path)
    if duration is not None:
        for what in sc.cut_short():
            click.echo(f"note: --duration {duration:g}s: {what}", err=True)
    result = simulator.run(sc, seed=seed, runs=runs, progress=progress,
                           timeline=plot_path is not None)
    # The result first (a failure to write one output must not lose the others).
    notes: list[str] = []
    errors: list[str] = []
    if json_path and json_path != "-":
        try:
            Path(json_path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            notes.append(f"JSON written to {json_path}")
        except OSError as exc:
            errors.append(f"--json {json_path}: cannot write: {exc.strerror or exc}")
    if plot_path:
        try:
            notes.append(f"plot written to {plot(result, plot_path)}")
        except PlotError as exc:
            errors.append(f"--plot {exc}")
        except OSError as exc:
            errors.append(f"--plot {plot_path}: cannot write: {exc.strerror or exc}")
    if json_path == "-":
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(_describe_summary(result) if "runs" in result else _describe(result))
    for note in notes:
        click.echo(note, err=True)
    if errors:
        raise CommandError("; ".join(errors))


@main.command()
@click.option("--json", "as_json", is_flag=True, help='print {"key": KEY} instead')
def keygen(as_json: bool) -> None:
    """Print a new encryption key.

    The key is 32 random bytes (os.urandom), base64-encoded: an AES-256 key for the
    memberlist keyring, the kind `serf keygen` makes and `serf agent -encrypt` accepts.
    """
    key = base64.b64encode(os.urandom(KEY_SIZE)).decode("ascii")
    click.echo(json.dumps({"key": key}) if as_json else key)


# The agent's commands (`swimpy agent`, its client commands, ...), as they are written.
for _command in (*_AGENT_COMMANDS, _demo_command):
    main.add_command(_command)
# `swimpy sweep` (swimpy.sweep.cli; its machinery is imported when it runs).
main.add_command(_sweep_command)


if __name__ == "__main__":
    main(prog_name="swimpy")
