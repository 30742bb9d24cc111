"""Redis key names of the read model, in one place.

A projection has a prefix (`orders`) and every key of it starts with the prefix as a hash tag,
`{orders}`: a Redis Cluster keeps them all in one slot, so each Lua script (which reads the pointer
and writes the namespace it names, its orders, indexes and stats in one atomic step), each
transaction of the queries and each channel reach the one node serving that slot. The price: one
projection is served by one master, not spread over the cluster (the cluster brings failover and
room for other data, not more throughput for one projection's views).

Its views live in a namespace `{prefix}:n{seq}`; the pointer key `{prefix}:current` names the
namespace that serves, `{prefix}:building` the one a rebuild is filling. A script takes the keys
it starts from in KEYS (the pointer, the building key) and derives the rest from the namespace
these name: keys that depend on what the script reads (the order's old status picks the index it
leaves) cannot be listed by the caller, and the shared tag keeps them in the declared keys' slot,
which Redis checks (a script touching another slot fails, it is not silently cross-slot).

Positions are stored as 20-digit zero-padded decimals so Lua compares them as strings (they exceed
2**53, the largest integer a Lua number holds exactly).

The parts of the names inside a namespace are `KeyParts`: the Lua scripts get them as the table
`KEY` (see `projections.lua_scripts`) and build the same names from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

POSITION_DIGITS = 20


class KeyParts:
    """What follows a namespace (or a prefix) in a key's name."""

    NAMESPACE: Final = ":n"  # {prefix}:n{seq}
    ORDER: Final = ":o:"  # the order's hash: {ns}:o:{order id}
    ALL_INDEX: Final = ":i:all"
    CUSTOMER_INDEX: Final = ":i:c:"  # {ns}:i:c:{customer}
    STATUS_INDEX: Final = ":i:s:"  # {ns}:i:s:{status}
    CUSTOMER_STATUS_INDEX: Final = ":i:cs:"  # {ns}:i:cs:{status}:{customer}
    STATS: Final = ":stats"
    META: Final = ":meta"
    DIRTY: Final = ":dirty"  # orders a rebuild must fetch again
    CHANGES: Final = ":changes"  # the channel of applied changes
    SEPARATOR: Final = ":"  # between the parts of an index member and of a name's values


def as_text(value: object) -> str:
    """A Redis reply as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


def pad_position(position: int) -> str:
    """A position as Redis stores it: comparable as a string."""
    return str(position).zfill(POSITION_DIGITS)  # as f"{position:020d}", 6x faster (hot path)


def index_member(placed_position: int, order_id: str) -> str:
    """An order's member in the index sorted sets: newest first by lexicographic order."""
    return f"{pad_position(placed_position)}{KeyParts.SEPARATOR}{order_id}"


def member_order_id(member: str) -> str:
    """The order id of an `index_member`."""
    return member[POSITION_DIGITS + len(KeyParts.SEPARATOR) :]


@dataclass(frozen=True, slots=True)
class ProjectionKeys:
    """Key names of one projection (all namespaces)."""

    prefix: str = "orders"

    @property
    def tag(self) -> str:
        """The start of every key: the prefix as a Redis Cluster hash tag."""
        return f"{{{self.prefix}}}"

    @property
    def pointer(self) -> str:
        return f"{self.tag}:current"

    @property
    def building(self) -> str:
        return f"{self.tag}:building"

    @property
    def sequence(self) -> str:
        return f"{self.tag}:nsseq"

    @property
    def switch_channel(self) -> str:
        return f"{self.tag}:switch"

    def namespace(self, sequence: int) -> str:
        """The name of the namespace numbered `sequence`."""
        return f"{self.tag}{KeyParts.NAMESPACE}{sequence}"

    def namespace_pattern(self, suffix: str) -> str:
        """A glob matching `suffix` (a `KeyParts` member) in every namespace (braces are literal
        in a glob)."""
        return f"{self.tag}{KeyParts.NAMESPACE}*{suffix}"

    @property
    def all_keys_pattern(self) -> str:
        """A glob matching every key of the projection."""
        return f"{self.tag}:*"

    @property
    def changes_pattern(self) -> str:
        return self.namespace_pattern(KeyParts.CHANGES)

    @property
    def workers(self) -> str:
        return f"{self.tag}:workers"

    @property
    def rebuild_lock(self) -> str:
        return f"{self.tag}:rebuild-lock"


@dataclass(frozen=True, slots=True)
class NamespaceKeys:
    """Key names inside one namespace; the Lua scripts build the same names from `KeyParts`."""

    ns: str

    def order(self, order_id: str) -> str:
        return f"{self.ns}{KeyParts.ORDER}{order_id}"

    @property
    def all_index(self) -> str:
        return f"{self.ns}{KeyParts.ALL_INDEX}"

    def customer_index(self, customer_id: str) -> str:
        return f"{self.ns}{KeyParts.CUSTOMER_INDEX}{customer_id}"

    def status_index(self, status: str) -> str:
        return f"{self.ns}{KeyParts.STATUS_INDEX}{status}"

    def customer_status_index(self, customer_id: str, status: str) -> str:
        return f"{self.ns}{KeyParts.CUSTOMER_STATUS_INDEX}{status}{KeyParts.SEPARATOR}{customer_id}"

    @property
    def stats(self) -> str:
        return f"{self.ns}{KeyParts.STATS}"

    @property
    def meta(self) -> str:
        return f"{self.ns}{KeyParts.META}"

    @property
    def dirty(self) -> str:
        return f"{self.ns}{KeyParts.DIRTY}"

    @property
    def changes(self) -> str:
        return f"{self.ns}{KeyParts.CHANGES}"
