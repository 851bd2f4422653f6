"""Sphinx configuration of swimpy's documentation site.

Build it with ``pip install -e '.[docs]' && sphinx-build -W docs docs/_build``;
``tests/test_docs_build.py`` runs the same build with warnings as errors.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

DOCS = Path(__file__).resolve().parent
# the checkout's swimpy, even when the package is not installed
sys.path.insert(0, str(DOCS.parent))

import swimpy  # noqa: E402

project = "swimpy"
author = "the swimpy authors"
copyright = "the swimpy authors"
release = swimpy.__version__
version = release

extensions = [
    # the existing Markdown pages (docs/*.md) and the new ones
    "myst_parser",
    # the API reference, from the docstrings
    "sphinx.ext.autodoc",
    # links to the Python and trio documentation
    "sphinx.ext.intersphinx",
    # "[source]" links from the API reference to the highlighted code
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# Only .md and .rst files are documents; these are named anyway so that nothing else in
# docs/ (the sybil conftest, the figure script, the stored inventories, the build output)
# is ever read as one.
exclude_patterns = [
    "_build",
    "_intersphinx",
    "conftest.py",
    "conf.py",
    "figures.py",
    "**/__pycache__",
    ".pytest_cache",
    "Thumbs.db",
    ".DS_Store",
]

# A code block that its lexer cannot read strictly (JSON with "..." for the parts left out)
# is still shown, highlighted in Pygments' relaxed mode: not worth failing the build.
suppress_warnings = ["misc.highlighting_failure"]

# -- MyST -----------------------------------------------------------------------------
# GitHub-style anchors for headings down to ####, so the pages' own links
# ("#the-config-table", "embedding.md#encryption-keys-at-run-time") work in the site as
# they do on GitHub.
myst_heading_anchors = 4

# -- autodoc --------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_default_options: dict[str, Any] = {"members": True}
add_module_names = False
python_display_short_literal_types = True

# -- intersphinx ----------------------------------------------------------------------
# The inventories are stored in docs/_intersphinx/ and tried first, so the build needs no
# network (CI has none): python.inv is Python 3.11's, from Debian's python3.11-doc
# package; trio.inv was built from trio's own docs/source (0.34). The URLs are where the
# links point, and the fallback when a stored inventory is missing.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", ("_intersphinx/python.inv", None)),
    "trio": ("https://trio.readthedocs.io/en/stable", ("_intersphinx/trio.inv", None)),
}
intersphinx_timeout = 5

# -- HTML -----------------------------------------------------------------------------
html_theme = "furo"
html_title = f"swimpy {release}"
html_static_path: list[str] = []
html_theme_options: dict[str, Any] = {"navigation_with_keys": True}
pygments_style = "sphinx"
pygments_dark_style = "monokai"


# -- links to the repository ------------------------------------------------------------


class RepositoryLinks(SphinxPostTransform):
    """Links from a page to files of the repository outside docs/ (``../swimpy/scenarios``)
    work where the Markdown is read in the repository, but the site has no copy of those
    files: show their text without a link. Runs just before MyST resolves its links, so
    a link to a path that does not exist still fails the build."""

    default_priority = 8  # MyST's reference resolver is 9

    def run(self, **kwargs: Any) -> None:
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst" or node.get("refdomain") == "doc":
                continue
            target = str(node.get("reftarget", ""))
            if not target or "://" in target or target.startswith(("#", "mailto:")):
                continue
            page = Path(self.env.doc2path(str(node.get("refdoc", self.env.docname))))
            path = (page.parent / target).resolve()
            if path.exists() and DOCS not in (path, *path.parents):
                text = node[0].deepcopy() if len(node) else nodes.literal(target, target)
                node.replace_self(text)


# -- signatures ----------------------------------------------------------------------


def _context_manager_signature(
    app: Sphinx, what: str, name: str, obj: object, options: object,
    signature: str | None, return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    """``@asynccontextmanager`` functions (``open_node``) are annotated as the generator
    they wrap (``AsyncIterator[Node]``); show what callers get: an async context manager."""
    wrapped = getattr(obj, "__wrapped__", None)
    if what != "function" or not return_annotation or not inspect.isasyncgenfunction(wrapped):
        return None
    head, sep, rest = return_annotation.partition("[")
    if not sep or not head.endswith("AsyncIterator"):
        return None
    return signature, f"~contextlib.AbstractAsyncContextManager[{rest}"


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_post_transform(RepositoryLinks)
    app.connect("autodoc-process-signature", _context_manager_signature)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
