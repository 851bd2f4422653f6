"""Run every example of the docs as a test (sybil), so the docs move with the code.

* ``python`` blocks run, one namespace per page, in a fresh working folder that holds the
  files the examples name (``swimpy.toml``, ``my-sweep.toml``, ``experiments/wan.toml``).
  Blocks marked ``<!-- skip: next -->`` are shown, not run (they need a real cluster).
* ``toml`` blocks are loaded by what they configure (a scenario, a sweep, a profile, an
  agent), so a renamed key or a bad value in the docs fails here with the loader's error.
* ``console`` and ``sh`` blocks: every ``swimpy ...`` command in them is parsed by the real
  click command line (options, arguments and their types, without running it), so the docs
  never show an option that does not exist.

docs/ is also the Sphinx site's source; docs/conf.py keeps this file out of it."""

from __future__ import annotations

import shlex
import tomllib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

# Small files the examples open by name (kept tiny so the examples run in seconds).
_FILES = {
    "swimpy.toml": 'profile = "lan"\nname = "web-1"\nprobe_interval = "500ms"\n',
    "my-sweep.toml": (
        'scenario = "crash"\nseeds = 1\n[fixed]\nduration = "20s"\n'
        "[axes]\nnodes = [5]\nsuspicion_mult = [2, 4]\n"
    ),
    "experiments/wan.toml": (
        'description = "a small WAN pool losing a member"\nnodes = 5\nprofile = "wan"\n'
        'duration = "60s"\n[[events]]\nat = "10s"\naction = "crash"\nnode = 4\n'
    ),
}


@pytest.fixture
def docs_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name, text in _FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def check_toml(example: Example) -> None:
    """Load a TOML block with the loader of what it configures."""
    text = str(example.parsed)
    data = tomllib.loads(text)
    where = f"{Path(example.path).name}:{example.line}"
    page = Path(example.path).name
    if page == "sweeps.md" or "axes" in data:
        from swimpy.sweep.spec import parse_spec

        parse_spec(text, source=where)
    elif page == "agent.md":
        from swimpy.agent import settings

        settings.validate(settings.from_mapping(data, where))
    elif "events" in data or "network" in data or "start" in data or "nodes" in data:
        from swimpy.sim.scenario import parse_scenario

        parse_scenario(text, source=where)
    else:
        from swimpy.profiles import from_mapping

        from_mapping(data, source=where)


def _commands(text: str) -> Iterator[list[str]]:
    """The ``swimpy`` command lines of a console block (``$ `` prompts, ``\\`` joins)."""
    lines = iter(text.splitlines())
    for line in lines:
        if not line.startswith("$ "):
            continue
        cmd = line[2:]
        while cmd.rstrip().endswith("\\"):
            cmd = cmd.rstrip()[:-1] + " " + next(lines, "").strip()
        # the command ends at a comment, a pipe, a redirection or a background &
        words = shlex.split(cmd, comments=True)
        for i, word in enumerate(words):
            if word in {"|", "&", "&&", ";", ">", "2>&1"}:
                words = words[:i]
                break
        # `VAR=x swimpy ...`, `sudo swimpy ...`
        while words and ("=" in words[0] or words[0] == "sudo"):
            words = words[1:]
        words = [w for w in words if w != "..."]  # "more options" in the prose
        if words[:1] == ["swimpy"]:
            yield words[1:]
        elif words[:3] == ["python", "-m", "swimpy"]:
            yield words[3:]


def _unparsed(ctx: click.Context) -> list[str]:
    """A group's subcommand and its arguments, left unparsed by the group's context
    (click 8 keeps the first in ``protected_args``, deprecated for click 9)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [*getattr(ctx, "protected_args", ()), *ctx.args]


def check_console(example: Example) -> None:
    """Parse every ``swimpy`` command of the block with the real click group."""
    from swimpy.cli import main

    for args in _commands(str(example.parsed)):
        ctx: click.Context | None = None
        try:
            ctx = main.make_context("swimpy", list(args), resilient_parsing=False)
            group: Any = main
            rest = _unparsed(ctx)
            while rest and isinstance(group, click.Group):
                name, cmd, rest = group.resolve_command(ctx, rest)
                assert cmd is not None, f"unknown command {name!r}"
                ctx = cmd.make_context(name or "", list(rest), parent=ctx)
                group = cmd
                rest = _unparsed(ctx) if isinstance(cmd, click.Group) else []
        except click.exceptions.Exit:
            pass  # --help, --version
        except click.ClickException as exc:
            raise AssertionError(
                f"{Path(example.path).name}:{example.line}: `swimpy {shlex.join(args)}`: "
                f"{exc.format_message()}"
            ) from exc


pytest_collect_file = Sybil(
    parsers=[
        PythonCodeBlockParser(),
        SkipParser(),
        CodeBlockParser(language="toml", evaluator=check_toml),
        CodeBlockParser(language="console", evaluator=check_console),
        CodeBlockParser(language="sh", evaluator=check_console),
    ],
    patterns=["*.md"],
    fixtures=["docs_workdir"],
).pytest()
