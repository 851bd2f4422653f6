"""The documentation site builds, with every Sphinx warning an error.

The same command people run (README: ``sphinx-build docs docs/_build/html``) with ``-W``:
a broken link, an unknown cross-reference, a docstring that is not valid reStructuredText
or a page missing from the table of contents fails the test suite, so CI catches it.
The packages come with the ``test`` extra (and ``docs``); without them the test skips.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOCS_PACKAGES = {"sphinx": "sphinx", "myst_parser": "myst-parser", "furo": "furo"}

missing = [dist for mod, dist in DOCS_PACKAGES.items() if importlib.util.find_spec(mod) is None]


@pytest.mark.skipif(
    bool(missing),
    reason=f"the docs packages are not installed ({', '.join(missing)} missing): "
    "pip install -e '.[docs]' (the test extra includes them)",
)
def test_sphinx_build_has_no_warnings(tmp_path: Path) -> None:
    out = tmp_path / "html"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, (
        f"sphinx-build -W failed (exit {proc.returncode}) after {elapsed:.1f} s:\n"
        f"{proc.stderr}{proc.stdout}"
    )
    # the pages of the site, the API reference and the figures are all there
    for page in ("index", "quickstart", "concepts", "embedding", "agent", "simulator",
                 "tuning", "wire", "engine", "api/index", "api/core", "api/swimpy",
                 "api/sim"):
        assert (out / f"{page}.html").is_file(), page
    for figure in ("probe.svg", "states.svg", "suspicion.svg", "dissemination.svg"):
        assert (out / "_images" / figure).is_file(), figure
    # nothing else in docs/ became a page
    for not_a_page in ("conftest", "conf", "figures"):
        assert not (out / f"{not_a_page}.html").exists(), not_a_page
    # the API reference was generated from the docstrings, with links to Python and trio
    core = (out / "api" / "core.html").read_text(encoding="utf-8")
    assert 'id="swimpy.core.Engine"' in core
    assert 'id="swimpy.core.Engine.handle"' in core
    quickstart = (out / "quickstart.html").read_text(encoding="utf-8")
    assert "trio.readthedocs.io/en/stable/reference-core.html#trio.run" in quickstart


@pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is not installed: pip install -e '.[plot]' to redraw the figures",
)
def test_figure_script_draws_every_figure(tmp_path: Path) -> None:
    """docs/figures.py still runs (the committed SVGs in docs/img/ are its output)."""
    proc = subprocess.run(
        [sys.executable, str(DOCS / "figures.py"), "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    drawn = sorted(p.name for p in tmp_path.glob("*.svg"))
    assert drawn == ["dissemination.svg", "probe.svg", "states.svg", "suspicion.svg"]
    committed = {p.name for p in (DOCS / "img").glob("*.svg")}
    assert set(drawn) <= committed, "run python docs/figures.py and commit docs/img/"
