"""A small TOML writer for parsed scenario data (what :mod:`tomllib` returns).

The sweep rewrites a scenario with a point's settings applied and hands the text to the
simulator's own parser, so every point is checked exactly as ``swimpy sim`` checks a file.
The output is canonical: keys sorted, one ``key = value`` line per top-level key, tables as
inline tables. The same data always gives the same text, which is what the task keys hash.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps"]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(k: str) -> str:
    # fullmatch: "$" would also match before a trailing newline ("0\n" is no bare key)
    return k if _BARE.fullmatch(k) else _string(k)


def _string(s: str) -> str:
    # JSON's escapes (\" \\ \n \t \uXXXX ...) are TOML's; DEL is the one control character
    # JSON leaves alone and TOML forbids in a basic string.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_value(v[k])}" for k in sorted(v)) + " }"
    raise TypeError(f"{v!r}: cannot be written as TOML here (a {type(v).__name__})")


def dumps(data: Mapping[str, Any]) -> str:
    """``data`` as TOML text that :func:`tomllib.loads` reads back equal (keys sorted)."""
    return "".join(f"{_key(k)} = {_value(data[k])}\n" for k in sorted(data))
