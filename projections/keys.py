"""Redis key names of the read model, in one place.

A projection has a prefix (`orders`). Its views live in a namespace `{prefix}:n{seq}`; the pointer
key `{prefix}:current` names the namespace that serves, `{prefix}:building` the one a rebuild is
filling. Positions are stored as 20-digit zero-padded decimals so Lua compares them as strings
(they exceed 2**53, the largest integer a Lua number holds exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

POSITION_DIGITS = 20


def as_text(value: object) -> str:
    """A Redis reply as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


def pad_position(position: int) -> str:
    """A position as Redis stores it: comparable as a string."""
    return f"{position:0{POSITION_DIGITS}d}"


def index_member(placed_position: int, order_id: str) -> str:
    """An order's member in the index sorted sets: newest first by lexicographic order."""
    return f"{pad_position(placed_position)}:{order_id}"


@dataclass(frozen=True, slots=True)
class ProjectionKeys:
    """Key names of one projection (all namespaces)."""

    prefix: str = "orders"

    @property
    def pointer(self) -> str:
        return f"{self.prefix}:current"

    @property
    def building(self) -> str:
        return f"{self.prefix}:building"

    @property
    def sequence(self) -> str:
        return f"{self.prefix}:nsseq"

    @property
    def switch_channel(self) -> str:
        return f"{self.prefix}:switch"

    @property
    def changes_pattern(self) -> str:
        return f"{self.prefix}:n*:changes"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def rebuild_lock(self) -> str:
        return f"{self.prefix}:rebuild-lock"


@dataclass(frozen=True, slots=True)
class NamespaceKeys:
    """Key names inside one namespace; the Lua scripts build the same names."""

    ns: str

    def order(self, order_id: str) -> str:
        return f"{self.ns}:o:{order_id}"

    @property
    def all_index(self) -> str:
        return f"{self.ns}:i:all"

    def customer_index(self, customer_id: str) -> str:
        return f"{self.ns}:i:c:{customer_id}"

    def status_index(self, status: str) -> str:
        return f"{self.ns}:i:s:{status}"

    def customer_status_index(self, customer_id: str, status: str) -> str:
        return f"{self.ns}:i:cs:{status}:{customer_id}"

    @property
    def stats(self) -> str:
        return f"{self.ns}:stats"

    @property
    def meta(self) -> str:
        return f"{self.ns}:meta"

    @property
    def dirty(self) -> str:
        return f"{self.ns}:dirty"

    @property
    def changes(self) -> str:
        return f"{self.ns}:changes"
