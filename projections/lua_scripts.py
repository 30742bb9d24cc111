"""The Lua scripts as Redis runs them: each one's source after a preamble of the names Python owns.

A script names a hash field as `ORDER.version`, `STATS.count_prefix`, `META.ready` or
`CHANGE.customer_id`, a change's kind as `KIND.placed` and a part of a key's name as `KEY.order`:
tables of local strings built here, once, from `projections.fields`, `mapping.ChangeKind` and
`keys.KeyParts` (the attribute's name in lower case).
Loading a script refuses one that names something those owners do not define, so a renamed or
misspelt field fails when the view store is built, not as a nil inside Redis.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from importlib import resources
from types import MappingProxyType

from projections.fields import ChangeFields, MetaFields, OrderFields, StatsFields
from projections.keys import KeyParts
from projections.mapping import ChangeKind

_PLAIN = re.compile(r"[A-Za-z0-9_:]+")
"""What a name may be: each is spliced into Lua source as a quoted literal, unescaped."""


def _table(owner: type) -> Mapping[str, str]:
    """The owner's names keyed as a script spells them: the constant's name in lower case."""
    if issubclass(owner, Enum):
        names = {member.name.lower(): str(member.value) for member in owner}
    else:
        names = {
            attribute.lower(): value
            for attribute, value in vars(owner).items()
            if attribute.isupper() and isinstance(value, str)
        }
    for value in names.values():
        if not _PLAIN.fullmatch(value):
            raise ValueError(f"{owner.__name__}: {value!r} is not a plain name")
    return MappingProxyType(names)


TABLES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "ORDER": _table(OrderFields),
        "STATS": _table(StatsFields),
        "META": _table(MetaFields),
        "CHANGE": _table(ChangeFields),
        "KIND": _table(ChangeKind),
        "KEY": _table(KeyParts),
    }
)
"""Every table a script sees: its name -> {name in Lua -> the value}."""

PREAMBLE = "".join(
    f"local {table} = {{{', '.join(f'{key} = {value!r}' for key, value in names.items())}}}\n"
    for table, names in TABLES.items()
)
"""Lua that defines every table (one line each, so a script's line numbers move by a few)."""

_REFERENCE = re.compile(r"\b(" + "|".join(TABLES) + r")\.([A-Za-z_][A-Za-z0-9_]*)")


class UnknownName(ValueError):
    """A Lua script names a field (or kind) that the Python owner does not define."""


def unknown_names(source: str) -> list[str]:
    """The `TABLE.name` references in `source` that no table defines, in order of appearance."""
    return [
        f"{table}.{name}" for table, name in _REFERENCE.findall(source) if name not in TABLES[table]
    ]


def with_names(name: str, source: str) -> str:
    """`source` as it is sent to Redis: the preamble, then the script. Raises `UnknownName` when
    it names something the owners do not define."""
    unknown = unknown_names(source)
    if unknown:
        raise UnknownName(f"{name} names what Python does not define: {', '.join(unknown)}")
    return PREAMBLE + source


def script_source(name: str) -> str:
    """The script `name` of `projections/lua`, ready for Redis (see `with_names`)."""
    return with_names(name, resources.files("projections.lua").joinpath(name).read_text("utf-8"))
