"""What one value of the response can weigh: the bounds the document analysis
(`api.graphql.analysis`) multiplies into an operation's cost, an upper bound of the bytes of its
`data`.

A leaf weighs at most its JSON text: an Int 11 bytes, an ID of the contract's pattern 66, a
String its maximum length (free text is at most `MAX_TEXT_LENGTH` characters, 4 UTF-8 bytes
each, plus quotes), a JSON value its bound (an event's data is at worst an `OrderPlaced` of 100
items with the longest names). A list is as long as its `first` argument (the coerced value,
capped by the page the resolver accepts) or else its known bound. Objects add their keys,
braces and commas.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import orjson
from graphql import (
    GraphQLEnumType,
    GraphQLNamedType,
    GraphQLScalarType,
    GraphQLSchema,
    is_abstract_type,
    is_introspection_type,
)

from domain.validation import ID_PATTERN, MAX_ITEMS, MAX_QTY, MAX_TEXT_LENGTH
from projections.queries import MAX_VIEW_PAGE

UTF8_MAX = 4
"""Bytes one character of a string can take in the encoded response (control characters, which
JSON escapes to 6, are refused in every free text)."""

MAX_ID_LENGTH = 64
"""The contract's id pattern allows 64 characters, all ASCII."""

MAX_EVENT_PAGE = 1000
"""`api.graphql.schema.arguments.MAX_EVENT_PAGE` (not imported: the schema package imports this
module)."""

MAX_CORRELATION_ID = 128
"""`api.http.request_record.MAX_CORRELATION_ID`, the longest correlation id a request may carry."""

MAX_SUBJECT_LENGTH = 256
"""The longest token subject (`actor` in event metadata) the bounds assume."""


def text_bytes(characters: int) -> int:
    """The most a JSON string of at most `characters` characters encodes to."""
    return characters * UTF8_MAX + 2


TEXT = text_bytes(MAX_TEXT_LENGTH)
ID_BYTES = MAX_ID_LENGTH + 2
DECIMAL_BYTES = 42
"""A decimal string: totals stay under 10^15 by the domain's rules; revenue sums many of them."""

SCALAR_BYTES: Mapping[str, int] = {
    "Int": 11,
    "Float": 24,
    "Boolean": 5,
    "ID": ID_BYTES,
    "String": TEXT,
    "DateTime": 34,
    "Decimal": DECIMAL_BYTES,
}
"""The bound of each scalar's JSON text, when its field has none of its own."""

UNKNOWN_SCALAR_BYTES = 1024
"""A scalar neither `SCALAR_BYTES` nor `FIELD_BYTES` bounds (none today)."""


def _worst_item() -> dict[str, object]:
    return {
        "id": "i" * MAX_ID_LENGTH,
        "name": "\U0001f600" * MAX_TEXT_LENGTH,
        "price": "1000000000.00",
        "qty": MAX_QTY,
    }


def _worst_event_data() -> int:
    """An `OrderPlaced`'s data at its largest: the largest event any order can hold."""
    items = [_worst_item() for _ in range(MAX_ITEMS)]
    data = {
        "orderId": "o" * MAX_ID_LENGTH,
        "customerId": "c" * MAX_ID_LENGTH,
        "items": items,
        "total": "1" * DECIMAL_BYTES,
    }
    return len(orjson.dumps(data))


def _worst_light_event_data() -> int:
    """The largest data of any event but `OrderPlaced` (one item added, or a few free texts)."""
    text = "\U0001f600" * MAX_TEXT_LENGTH
    total = "1" * DECIMAL_BYTES
    candidates: list[dict[str, object]] = [
        {"item": _worst_item(), "total": total},
        {"amount": total, "method": text, "transactionId": text},
        {"trackingId": text, "carrier": text},
        {"reason": text},
        {"productId": "i" * MAX_ID_LENGTH, "total": total},
    ]
    return max(len(orjson.dumps(data)) for data in candidates)


def _worst_metadata() -> int:
    long_text = "\U0001f600" * MAX_CORRELATION_ID
    metadata = {
        "schemaVersion": 2,
        "occurredAt": "2024-05-01T12:00:00.000000+00:00",
        "$correlationId": long_text,
        "$causationId": long_text,
        "actor": "\U0001f600" * MAX_SUBJECT_LENGTH,
        "$traceparent": "0" * 55,
    }
    return len(orjson.dumps(metadata))


FIELD_BYTES: Mapping[str, int] = {
    "Event.data": _worst_event_data(),
    "Event.metadata": _worst_metadata(),
    "Event.type": text_bytes(32),
    "Event.streamId": text_bytes(len("order-") + MAX_ID_LENGTH),
    "Event.position": 27,
    "PageInfo.endCursor": text_bytes(128),
    "PageInfo.startCursor": text_bytes(128),
    "OrderEdge.cursor": text_bytes(128),
    "EventEdge.cursor": text_bytes(128),
    "ProjectionStatus.lastError": text_bytes(4096),
}
"""Leaves whose bound is not their scalar's, by `Type.field`."""

ONE_STREAM_LISTS = frozenset({"Order.history", "Query.orderEvents"})
"""Lists of one order's events: a stream holds one `OrderPlaced` (the only event whose data can
carry 100 items), so the list is priced as one heavy event and the rest light ones."""

LIGHT_FIELD_BYTES: Mapping[str, int] = {"Event.data": _worst_light_event_data()}
"""Bounds of an order's events after its one `OrderPlaced`, by `Type.field`."""

LIGHT_LIST_SIZES: Mapping[str, int] = {"OrderPlacedData.items": 0}
"""Lists that only an `OrderPlaced` carries: empty in the other events."""

assert ID_PATTERN.fullmatch("i" * MAX_ID_LENGTH) is not None

PAGE_LIMITS: Mapping[str, int] = {
    "Query.orders": MAX_VIEW_PAGE,
    "Query.events": MAX_EVENT_PAGE,
    "Query.orderEvents": MAX_EVENT_PAGE,
    "Order.history": MAX_EVENT_PAGE,
}
"""The largest `first` each paged field's resolver accepts (more is refused as BAD_USER_INPUT),
by `Type.field`; also its length when `first` is null or cannot be known."""

UNKNOWN_PAGE_LIMIT = MAX_EVENT_PAGE
"""A paged field not in `PAGE_LIMITS`, when its `first` cannot be known."""

LIST_SIZES: Mapping[str, int] = {
    # One entry per line of an order: the contract's bound.
    "Order.items": MAX_ITEMS,
    "OrderState.items": MAX_ITEMS,
    "OrderPlacedData.items": MAX_ITEMS,
    # One entry per status.
    "DashboardStats.byStatus": 4,
    "Query.projections": 8,
    # A command appends a few events at most.
    "CommandAccepted.eventIds": 4,
}
"""Bounds of the lists that take no `first` argument, by `Type.field` (a connection's `edges`
are as long as the connection's `first`)."""

DEFAULT_LIST_SIZE = 100
"""The bound assumed for a list neither `first` nor `LIST_SIZES` bounds."""


def leaf_bytes(parent: str, field: str, kind: GraphQLNamedType, *, light: bool = False) -> int:
    """The most one value of a leaf field (scalar or enum) encodes to (`light`: in an event
    that is not an `OrderPlaced`)."""
    key = f"{parent}.{field}"
    bound = LIGHT_FIELD_BYTES.get(key) if light else None
    if bound is None:
        bound = FIELD_BYTES.get(key)
    if bound is not None:
        return bound
    if isinstance(kind, GraphQLEnumType):
        return max((len(name) for name in kind.values), default=0) + 2
    if isinstance(kind, GraphQLScalarType):
        return SCALAR_BYTES.get(kind.name, UNKNOWN_SCALAR_BYTES)
    return UNKNOWN_SCALAR_BYTES


@cache
def schema_bounds(schema: GraphQLSchema) -> SchemaBounds:
    """The bounds the schema itself sets (introspection lists and texts, type names)."""
    return SchemaBounds(schema)


class SchemaBounds:
    """Bounds read from one schema: how long introspection's lists and strings can be, and the
    longest `__typename`. Introspection answers describe this fixed schema, so these are exact
    maxima, not guesses."""

    def __init__(self, schema: GraphQLSchema) -> None:
        types = list(schema.type_map.values())
        fields = [len(getattr(t, "fields", {}) or {}) for t in types]
        args = [
            len(f.args)
            for t in types
            for f in (getattr(t, "fields", {}) or {}).values()
            if hasattr(f, "args")
        ]
        args += [len(d.args) for d in schema.directives]
        enum_values = [len(t.values) for t in types if isinstance(t, GraphQLEnumType)]
        possible = [len(schema.get_possible_types(t)) for t in types if is_abstract_type(t)]
        names = [len(t.name) for t in types]
        names += [len(name) for t in types for name in (getattr(t, "fields", {}) or {})]
        names += [len(d.name) for d in schema.directives]
        names += [len(name) for t in types if isinstance(t, GraphQLEnumType) for name in t.values]
        texts = [t.description for t in types]
        texts += [
            text
            for t in types
            for f in (getattr(t, "fields", {}) or {}).values()
            for text in (f.description, getattr(f, "deprecation_reason", None))
        ]
        texts += [
            a.description
            for t in types
            for f in (getattr(t, "fields", {}) or {}).values()
            for a in (getattr(f, "args", {}) or {}).values()
        ]
        texts += [d.description for d in schema.directives]
        self.typename_bytes = max(names) + 2
        self.name_bytes = max(names) + 2
        self.text_bytes = max(len(orjson.dumps(text)) for text in texts)
        most = max(fields + args + enum_values + possible + [1])
        self.lists: Mapping[str, int] = {
            "__Schema.types": len(types),
            "__Schema.directives": len(schema.directives),
            "__Type.fields": max(fields, default=0),
            "__Type.inputFields": max(fields, default=0),
            "__Type.interfaces": most,
            "__Type.possibleTypes": most,
            "__Type.enumValues": max(enum_values, default=0),
            "__Field.args": max(args, default=0),
            "__Directive.args": max(args, default=0),
            "__Directive.locations": 19,
        }
        self.most = most
        count = max(len(types), 1)
        field_total = max(sum(fields), 1)
        self.per_type: Mapping[str, float] = {
            "__Type.fields": field_total / count,
            "__Type.inputFields": field_total / count,
            "__Type.interfaces": sum(possible) / count,
            "__Type.possibleTypes": sum(possible) / count,
            "__Type.enumValues": sum(enum_values) / count,
        }
        self.per_field_args = sum(args) / field_total

    def scope(self, parent: str, field: str, scope: object) -> str | None:
        """The scope of a list's elements: "types" for `__schema { types }`, "fields" for the
        fields of those types, else None."""
        if parent == "__Schema" and field == "types":
            return "types"
        if scope == "types" and parent == "__Type" and field in ("fields", "inputFields"):
            return "fields"
        return None

    def list_size(self, parent: str, field: str, scope: object) -> float | None:
        """The length of an introspection list, None for other lists. Under every type
        (`scope` "types" or "fields") a list is priced by its average over the schema: the same
        selection applies to each element, so the sum is exact for the whole and the bytes an
        upper bound."""
        if not parent.startswith("__"):
            return None
        key = f"{parent}.{field}"
        if scope == "types" and key in self.per_type:
            return self.per_type[key]
        if scope == "fields" and key == "__Field.args":
            return self.per_field_args
        return self.lists.get(key, self.most)

    def leaf(
        self, parent: GraphQLNamedType, field: str, kind: GraphQLNamedType, *, light: bool
    ) -> int:
        """A leaf's bound, introspection's strings by the schema's longest text."""
        if is_introspection_type(parent) and kind.name == "String":
            return self.name_bytes if field == "name" else self.text_bytes
        return leaf_bytes(parent.name, field, kind, light=light)
