"""The ``swimpy`` command line.

``swimpy sim SCENARIO`` runs a simulation (``docs/simulator.md``); ``swimpy sim --list``
lists the scenarios shipped with the package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not >= 0")
    return value


def _duration(text: str) -> float:
    from swimpy.profiles import ConfigError, parse_duration

    try:
        value = parse_duration(float(text), "--duration")
    except ValueError:
        value = None
    try:
        if value is None:
            value = parse_duration(text, "--duration")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not > 0")
    return value


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    p = argparse.ArgumentParser(
        prog="swimpy",
        description="SWIM + Lifeguard membership, wire-compatible with HashiCorp memberlist.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser(
        "sim",
        help="run a deterministic cluster simulation",
        description=(
            "Run a scenario in the deterministic simulator: the real swimpy engine over a "
            "modelled network, in virtual time. SCENARIO is a TOML file or the name of a "
            "scenario shipped with swimpy (see --list)."
        ),
    )
    s.add_argument("scenario", nargs="?", metavar="SCENARIO", help="file path or shipped name")
    s.add_argument("--list", action="store_true", help="list the shipped scenarios and exit")
    s.add_argument("--seed", type=_seed, help="seed of the (first) run (default: the file's)")
    s.add_argument("--runs", type=_positive_int, default=1,
                   help="run K seeds (N .. N+K-1) and summarise (median, p99)")
    s.add_argument("--nodes", type=_positive_int, help="cluster size (groups are fractions)")
    s.add_argument("--profile", choices=("lan", "wan", "local"), help="memberlist profile")
    s.add_argument("--duration", type=_duration, help="simulated time, e.g. 300s or 5m")
    s.add_argument("--fidelity", choices=("fast", "wire"),
                   help="fast: pass messages directly; wire: encode every packet (exact bytes)")
    s.add_argument("--json", metavar="PATH", help="write the JSON result to PATH ('-' = stdout)")
    s.add_argument("--plot", metavar="PATH", help="write a convergence plot (.png or .svg)")
    bar = s.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always show a progress bar on stderr")
    bar.add_argument("--no-progress", dest="progress", action="store_false",
                     help="never show a progress bar")
    return p, s


def _fmt(x: float | None, unit: str = " s") -> str:
    return "never" if x is None else f"{x:.3f}{unit}"


def _describe(r: dict[str, Any]) -> str:
    lines = [
        f"scenario {r['scenario']}: {r['nodes']} members, {r['profile']} profile, "
        f"{r['fidelity']} fidelity, seed {r['seed']}",
        f"  simulated {r['simulated_seconds']:g} s in {r['wall_seconds']:.2f} s of wall time",
        f"  convergence: {_fmt(r['convergence_s'])} after the last disruption "
        f"(at {r['last_disruption_s']:g} s)",
    ]
    dets = r["detections"]
    if dets:
        lines.append("  detections (seconds after the event):")
        for name, d in dets.items():
            if d["kind"] == "crash":
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
        f"  {'metric':28s} {'median':>12s} {'p99':>12s} {'n':>6s} {'never':>6s}",
    ]
    for k, v in res["summary"].items():
        med = "-" if v["median"] is None else f"{v['median']:.4g}"
        p99 = "-" if v["p99"] is None else f"{v['p99']:.4g}"
        lines.append(f"  {k:28s} {med:>12s} {p99:>12s} {v['n']:>6d} {v['nulls']:>6d}")
    return "\n".join(lines)


def _sim(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from swimpy import sim
    from swimpy.sim.plot import PlotError, plot

    if args.list:
        for name in sim.list_scenarios():
            sc = sim.load_scenario(name)
            print(f"{name:24s} {sc.description}")
        return 0
    if not args.scenario:
        parser.error("the following arguments are required: SCENARIO (or --list)")
    try:
        result = sim.run(
            args.scenario,
            seed=args.seed,
            runs=args.runs,
            nodes=args.nodes,
            profile=args.profile,
            duration=args.duration,
            fidelity=args.fidelity,
            progress=args.progress,
            timeline=args.plot is not None,
        )
    except sim.ScenarioError as exc:
        print(f"swimpy sim: error: {exc}", file=sys.stderr)
        return 2
    notes: list[str] = []
    if args.plot:
        try:
            notes.append(f"plot written to {plot(result, args.plot)}")
        except PlotError as exc:
            print(f"swimpy sim: error: {exc}", file=sys.stderr)
            return 2
    if args.json:
        text = json.dumps(result, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
            for note in notes:
                print(note, file=sys.stderr)
            return 0
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text)
        notes.append(f"JSON written to {args.json}")
    print(_describe_summary(result) if "runs" in result else _describe(result), flush=True)
    for note in notes:
        print(note, file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``swimpy`` console script."""
    parser, sim_parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "sim":
        try:
            return _sim(args, sim_parser)
        except BrokenPipeError:
            # `swimpy sim ... | head`: stop quietly, as other command-line tools do.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
