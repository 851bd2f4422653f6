"""swimpy.core, swimpy.wire and swimpy.profiles stay pure: no sockets, clocks, threads,
async frameworks or global randomness (DESIGN.md, Layers)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "swimpy"
PURE = [ROOT / "core", ROOT / "wire", ROOT / "profiles.py"]
FORBIDDEN_MODULES = {
    "socket",
    "time",
    "threading",
    "asyncio",
    "trio",
    "anyio",
    "selectors",
    "multiprocessing",
    "concurrent",
    "subprocess",
    "datetime",
    "secrets",
}
GLOBAL_RANDOM = {
    "random",
    "randint",
    "randrange",
    "choice",
    "choices",
    "shuffle",
    "sample",
    "uniform",
    "getrandbits",
    "randbytes",
    "seed",
    "gauss",
}


def _files() -> list[Path]:
    out: list[Path] = []
    for p in PURE:
        out.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    return out


def violations(source: str) -> list[str]:
    tree = ast.parse(source)
    bad: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    bad.append(f"import {alias.name}")
                if alias.name == "os":
                    bad.append("import os")
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            if top in FORBIDDEN_MODULES or top == "os":
                bad.append(f"from {node.module} import ...")
            if top == "random":
                bad.extend(f"from random import {a.name}" for a in node.names if a.name != "Random")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "random"
            and node.func.attr in GLOBAL_RANDOM
        ):
            bad.append(f"random.{node.func.attr}()")
    return bad


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_layers_import_no_io_clock_threads_or_global_random(path: Path) -> None:
    assert violations(path.read_text()) == []


def test_checker_catches_each_kind_of_violation() -> None:
    src = (
        "import socket\nimport time as t\nfrom threading import Lock\nimport trio\n"
        "from random import shuffle\nimport random\nrandom.random()\nfrom os import urandom\n"
    )
    found = violations(src)
    assert "import socket" in found
    assert "import time" in found
    assert "from threading import ..." in found
    assert "import trio" in found
    assert "from random import shuffle" in found
    assert "random.random()" in found
    assert "from os import ..." in found


def test_seeded_random_instances_are_allowed() -> None:
    assert violations("import random\nr = random.Random(1)\nfrom random import Random\n") == []
