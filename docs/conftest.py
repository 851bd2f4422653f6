"""Run the Python examples of the docs as tests (sybil), so the docs move with the code.

Blocks marked ``<!-- skip: next -->`` are shown, not run (they need a real cluster)."""

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["embedding.md"],
).pytest()
