"""Frozen values built fast: a cheaper ``__init__`` for frozen, slotted dataclasses.

A frozen dataclass's generated ``__init__`` sets every field through
``object.__setattr__`` (its own ``__setattr__`` refuses), which costs about three times
what a plain slotted class pays. The engine builds a few of these values for every input
(a ``SetTimer`` and a ``SendPacket`` per probe, a timer per probe, ...), and a simulated
cluster handles millions of inputs, so the values built on those paths get an
``__init__`` that sets each slot through its slot descriptor directly. Everything else
(the frozen ``__setattr__``, equality, hashing, ``repr``, ``__match_args__``, the
signature and its defaults) is the dataclass's own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Class decorator (above ``@dataclass(frozen=True, slots=True)``): replace the
    generated ``__init__`` by one that writes the slots directly. Only for dataclasses
    without ``__post_init__``, ``init=False`` fields, keyword-only fields or default
    factories (none of those is needed by the values it is used on)."""
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    if "__slots__" not in cls.__dict__ or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__} is not a frozen, slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has __post_init__")
    namespace: dict[str, Any] = {}
    args: list[str] = []
    body: list[str] = []
    for f in params:
        if not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: not supported by fast_init")
        slot = next(k.__dict__[f.name] for k in cls.__mro__ if f.name in k.__dict__)
        namespace[f"_set_{f.name}"] = slot.__set__
        if f.default is dataclasses.MISSING:
            args.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            args.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})")
    source = f"def __init__(self, {', '.join(args)}):\n" + ("\n".join(body) or "    pass")
    exec(source, namespace)  # built from the dataclass's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    setattr(cls, "__init__", init)  # noqa: B010 (mypy refuses assigning a method)
    return cls


__all__ = ["fast_init"]
