"""Run the Python examples of the docs as tests (sybil), so the docs move with the code.

Blocks marked ``<!-- skip: next -->`` are shown, not run (they need a real cluster).
docs/ is also the Sphinx site's source; docs/conf.py keeps this file out of it."""

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["embedding.md", "quickstart.md"],
).pytest()
