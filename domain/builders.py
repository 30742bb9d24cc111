"""Constructors for frozen slotted dataclasses on the hot read path.

A frozen dataclass's generated `__init__` sets each field through `object.__setattr__`, the price of
immutability; building an event, a line item and an order state per event of a load made that a
third of the fold's cost. `builder(cls)` makes a function that takes every field positionally, in
declaration order, and sets the slots directly (as `copy` and `pickle` rebuild such objects): the
instance is equal to the one `cls(...)` returns. Only for classes without `__post_init__` and
without field conversions; callers pass already valid values, exactly as they would to `cls`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def builder(cls: type[T]) -> Callable[..., T]:
    """A positional constructor of `cls` (fields in declaration order) that skips `__init__`."""
    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} checks its fields in __post_init__: use its constructor")
    names = [field.name for field in dataclasses.fields(cls)]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    for name in names:
        namespace[f"_set_{name}"] = getattr(cls, name).__set__
    # Generated like dataclasses' own __init__: one straight-line function per class.
    lines = [f"def build({', '.join(names)}):", "    self = _new(_cls)"]
    lines += [f"    _set_{name}(self, {name})" for name in names]
    lines.append("    return self")
    exec("\n".join(lines), namespace)  # the source holds field names only, never data
    build: Callable[..., T] = namespace["build"]
    build.__qualname__ = f"builder({cls.__name__})"
    return build
