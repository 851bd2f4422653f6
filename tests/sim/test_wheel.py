"""The built wheel: what ``pip install swimpy`` users get, run outside the checkout.

A wheel is built from (a clean copy of) the working tree, installed into a fresh virtual
environment, and run from an empty directory: the shipped scenarios must be inside the
wheel, ``swimpy sim --list`` must show them and ``swimpy sim crash`` must run one. Every
swimpy module must come from the virtual environment, not from this checkout (the
editable install's import hook in the system site-packages would otherwise serve any
module missing from the wheel straight from the repository, and hide the bug).

Nothing is downloaded: the wheel is built without build isolation from the setuptools and
wheel already installed (the ``test`` extra lists them), and installed with ``--no-deps``
and ``PIP_NO_INDEX=1``; the runtime dependencies come from the environment running the
tests.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Generous: a cold build plus install takes a few seconds.
TIMEOUT = 300.0

#: Build output, caches and virtual environments in the checkout: never copied for a build.
_IGNORED_AT_ROOT = frozenset(
    {".git", "build", "dist", "out", ".venv", "venv", ".tox", ".nox", ".hypothesis",
     ".benchmarks", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
)


def _missing_build_tools() -> str | None:
    """Why a wheel cannot be built here without downloading anything, or None."""
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools is not installed (pip install -e '.[test]' provides it)"
    if importlib.util.find_spec("wheel") is None:
        # setuptools 70.1 and later build wheels without the `wheel` package.
        version = importlib.metadata.version("setuptools")
        if tuple(int(x) for x in re.findall(r"\d+", version)[:2]) < (70, 1):
            return "wheel is not installed (pip install -e '.[test]' provides it)"
    return None


_SKIP_REASON = _missing_build_tools()
pytestmark = pytest.mark.skipif(_SKIP_REASON is not None, reason=_SKIP_REASON or "")


@dataclass(frozen=True)
class Installed:
    """A wheel built from the checkout and installed into a fresh virtual environment."""

    src: Path  # the copy of the checkout the wheel was built from
    wheel: Path
    venv: Path
    python: Path  # the venv's interpreter
    script: Path  # the venv's `swimpy` console script
    workdir: Path  # an empty directory: the cwd of every command run in the venv
    env: dict[str, str]


def _env() -> dict[str, str]:
    """This process's environment without anything that could point at the checkout or at
    a package index."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH",
                     "VIRTUAL_ENV", "__PYVENV_LAUNCHER__"}
        and not k.startswith("PIP_")
    }
    env.update(
        PIP_NO_INDEX="1",
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _run(cmd: Sequence[str | Path], *, cwd: Path, env: dict[str, str]) -> str:
    res = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=TIMEOUT, check=False,
    )
    assert res.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({res.returncode})\n"
        f"--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
    )
    return res.stdout


def _ignore_build_output(directory: str, names: list[str]) -> set[str]:
    ignored = {n for n in names if n == "__pycache__" or n.endswith((".egg-info", ".pyc"))}
    if Path(directory) == ROOT:
        ignored |= _IGNORED_AT_ROOT.intersection(names)
    return ignored


def _modules(package_dir: Path) -> list[str]:
    """Dotted names of every module under ``package_dir`` (a directory named swimpy)."""
    out = []
    for py in sorted(package_dir.rglob("*.py")):
        parts = py.relative_to(package_dir.parent).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def _scenario_files(src: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((src / "swimpy" / "scenarios").glob("*.toml"))}


def _inside(path: str | Path, directory: Path) -> bool:
    return Path(path).resolve().is_relative_to(directory.resolve())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    env = _env()
    # Build from a copy, from its root: an in-tree build reuses build/lib, and
    # setuptools never deletes from it, so a module or scenario deleted from the
    # checkout would still be shipped (and this test would not notice). The copy keeps
    # symlinks as symlinks, as git checks them out.
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=_ignore_build_output)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--quiet", "-w", dist, "."], cwd=src, env=env)
    (wheel,) = dist.glob("swimpy-*.whl")

    # --without-pip: the venv's interpreter runs the pip it sees in the system
    # site-packages (installing into the venv), which saves the seconds ensurepip takes.
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
         cwd=tmp, env=env)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    workdir = tmp / "work"
    workdir.mkdir()
    purelib = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
             cwd=workdir, env=env).strip()
    )
    # --system-site-packages reaches only the base interpreter's site-packages; when the
    # tests themselves run in a virtual environment, the runtime dependencies (and pip)
    # are in that one. Listing this process's site directories in a .pth puts them on
    # the venv's sys.path, after the venv's own site-packages (harmless duplicates
    # otherwise). Their .pth files are not run, so no editable import hook comes along.
    site_dirs = [p for p in sys.path if Path(p).name in {"site-packages", "dist-packages"}]
    (purelib / "_outer_site.pth").write_text("".join(f"{p}\n" for p in site_dirs))
    # --ignore-installed: the editable swimpy in the system site-packages is visible from
    # the venv; without it pip might call the requirement satisfied or try to remove it.
    _run([python, "-m", "pip", "install", "--no-deps", "--ignore-installed", "--quiet",
          wheel], cwd=workdir, env=env)
    script = bindir / ("swimpy.exe" if os.name == "nt" else "swimpy")
    return Installed(src, wheel, venv, python, script, workdir, env)


def test_the_wheel_holds_the_shipped_scenarios_byte_for_byte(installed: Installed) -> None:
    expected = _scenario_files(installed.src)
    assert len(expected) >= 10
    with zipfile.ZipFile(installed.wheel) as zf:
        names = zf.namelist()
        shipped = {
            n.removeprefix("swimpy/scenarios/"): zf.read(n)
            for n in names
            if n.startswith("swimpy/scenarios/") and n.endswith(".toml")
        }
    assert shipped == expected
    assert "swimpy/py.typed" in names
    assert not [n for n in names if n.startswith("simulations")], "the repo symlink leaked in"


def test_every_module_and_the_scenarios_come_from_the_venv(installed: Installed) -> None:
    modules = _modules(installed.src / "swimpy")
    probe = (
        "import importlib.util, json, sys\n"
        "from importlib import resources\n"
        "import swimpy\n"
        "from swimpy.sim import list_scenarios\n"
        "origins = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    spec = importlib.util.find_spec(name)\n"
        "    origins[name] = None if spec is None else spec.origin\n"
        "print(json.dumps({'prefix': sys.prefix, 'swimpy': swimpy.__file__,\n"
        "    'origins': origins, 'scenarios': list_scenarios(),\n"
        "    'scenarios_dir': str(resources.files('swimpy').joinpath('scenarios'))}))\n"
    )
    out = json.loads(_run([installed.python, "-c", probe, json.dumps(modules)],
                          cwd=installed.workdir, env=installed.env))
    print(f"swimpy.__file__ = {out['swimpy']}")
    assert Path(out["prefix"]).resolve() == installed.venv.resolve()
    assert _inside(out["swimpy"], installed.venv), out["swimpy"]
    assert not _inside(out["swimpy"], ROOT)
    elsewhere = {
        n: o for n, o in out["origins"].items() if o is None or not _inside(o, installed.venv)
    }
    assert elsewhere == {}, f"modules missing from the wheel or loaded from elsewhere: {elsewhere}"
    assert _inside(out["scenarios_dir"], installed.venv), out["scenarios_dir"]
    shipped = sorted(n.removesuffix(".toml") for n in _scenario_files(installed.src))
    assert out["scenarios"] == shipped


def test_installed_cli_lists_the_shipped_scenarios(installed: Installed) -> None:
    out = _run([installed.python, "-m", "swimpy.cli", "sim", "--list"],
               cwd=installed.workdir, env=installed.env)
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert listed == {n.removesuffix(".toml") for n in _scenario_files(installed.src)}
    crash = next(line for line in out.splitlines() if line.startswith("crash "))
    assert "killed" in crash, "each listed scenario shows its description"


def test_installed_console_script_runs_a_shipped_scenario(installed: Installed) -> None:
    assert installed.script.is_file()
    out = _run([installed.script, "sim", "crash", "--nodes", "10", "--seed", "1",
                "--duration", "30s", "--json", "-"], cwd=installed.workdir, env=installed.env)
    r = json.loads(out)
    assert (r["scenario"], r["nodes"], r["seed"], r["simulated_seconds"]) == ("crash", 10, 1, 30.0)
    (d,) = r["detections"].values()
    assert (d["kind"], d["at_s"]) == ("crash", 10.0)
    assert d["first_suspect_s"] is not None and d["first_dead_s"] is not None
    assert d["all_dead_s"] is not None
    assert 0 < d["first_suspect_s"] <= d["first_dead_s"] <= d["all_dead_s"] < 20
    assert r["false_deaths"] == 0


def test_the_wheel_holds_the_shipped_sweeps_and_lists_them(installed: Installed) -> None:
    expected = {p.name: p.read_bytes()
                for p in sorted((installed.src / "swimpy" / "sweeps").glob("*.toml"))}
    assert expected
    with zipfile.ZipFile(installed.wheel) as zf:
        shipped = {n.removeprefix("swimpy/sweeps/"): zf.read(n) for n in zf.namelist()
                   if n.startswith("swimpy/sweeps/") and n.endswith(".toml")}
    assert shipped == expected
    out = _run([installed.script, "sweep", "--list"], cwd=installed.workdir, env=installed.env)
    assert {line.split()[0] for line in out.splitlines()} == {
        n.removesuffix(".toml") for n in expected}
