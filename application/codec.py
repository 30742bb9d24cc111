"""Maps domain events to stored events and back, exactly as CONTRACT section 1 says.

Every read path goes through `decode_record`, where upcasting happens (`domain.upcasting` holds the
upcasters; this module only parses, picks the schema version and hands over).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from application.timestamps import format_timestamp
from domain.events import (
    EVENT_TYPE_NAMES,
    ORDER_STREAM_PREFIX,
    ItemAdded,
    ItemRemoved,
    LineItem,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    PaymentTaken,
)
from domain.upcasting import (
    CURRENT_SCHEMA_VERSION,
    LEGACY_SCHEMA_VERSION,
    UnknownSchemaVersion,
    upcast,
)
from eventstore.port import EventFilter, NewEvent, RecordedEvent
from telemetry.tracing import METADATA_KEY as TRACEPARENT_KEY

logger = logging.getLogger(__name__)

ORDER_EVENTS = EventFilter(stream_prefixes=(ORDER_STREAM_PREFIX,))
"""The order events in the log: what the views are made of and what the relay publishes."""

DECODE_ERRORS = (UnknownSchemaVersion, ValueError, KeyError, TypeError, ArithmeticError)
"""What decoding a stored event may raise: such an event can never be projected or published
(its consumers park it)."""


SYSTEM_ACTOR = "system"
"""The actor an event's metadata names when no caller acted (no principal: the service itself)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventContext:
    """Who and what caused an event: becomes its metadata."""

    correlation_id: str
    causation_id: str
    actor: str
    occurred_at: datetime
    # The W3C traceparent of the command's span (tracing on): kept as `$traceparent`, so the
    # projector's and the relay's work joins the command's trace. Staff-only
    # (api.graphql.visibility).
    traceparent: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodedEvent:
    """A stored event read in the current schema.

    `event` is None for a type this code does not know (another service may write one): a tolerant
    reader shows it raw and folds past it.
    """

    record: RecordedEvent
    data: dict[str, Any]
    metadata: dict[str, Any]
    event: OrderEvent | None

    @property
    def occurred_at(self) -> datetime:
        raw = self.metadata.get("occurredAt")
        if isinstance(raw, str):
            try:
                return datetime.fromisoformat(raw)
            except ValueError:
                pass
        return self.record.recorded_at


def _money(value: Decimal) -> str:
    return str(value)


def item_to_wire(item: LineItem) -> dict[str, Any]:
    """A line item as every stored shape spells it: events, snapshots and the Redis views."""
    return {"id": item.product_id, "name": item.name, "price": _money(item.price), "qty": item.qty}


# Decoding runs once per event of every load and every projected event, and a frozen dataclass's
# __init__ sets each field through `object.__setattr__`. The values decoded most (items, amended
# orders' events, payments) are built by setting their slots directly, as `copy` does: each slot
# by its name, so a reordered field cannot swap values. tests/unit/test_fast_values.py holds every
# such value equal to the one its constructor builds.
_new = object.__new__


def slot_setter(cls: type, name: str) -> Callable[[object, object], None]:
    """What sets the slot `name` of a `cls` built with `object.__new__(cls)`."""
    setter: Callable[[object, object], None] = cls.__dict__[name].__set__
    return setter


_item_product_id = slot_setter(LineItem, "product_id")
_item_name = slot_setter(LineItem, "name")
_item_price = slot_setter(LineItem, "price")
_item_qty = slot_setter(LineItem, "qty")
_added_item = slot_setter(ItemAdded, "item")
_added_total = slot_setter(ItemAdded, "total")
_removed_product_id = slot_setter(ItemRemoved, "product_id")
_removed_total = slot_setter(ItemRemoved, "total")


def item_from_wire(raw: dict[str, Any]) -> LineItem:
    """The line item `item_to_wire` wrote (KeyError, ValueError or InvalidOperation if not)."""
    item: LineItem = _new(LineItem)
    _item_product_id(item, str(raw["id"]))
    _item_name(item, str(raw["name"]))
    _item_price(item, Decimal(str(raw["price"])))
    _item_qty(item, int(raw["qty"]))
    return item


def to_wire(event: OrderEvent) -> dict[str, Any]:
    """The event's data as CONTRACT section 1 spells it (camelCase, money as strings)."""
    match event:
        case OrderPlaced():
            return {
                "orderId": event.order_id,
                "customerId": event.customer_id,
                "items": [item_to_wire(i) for i in event.items],
                "total": _money(event.total),
            }
        case PaymentTaken():
            return {
                "amount": _money(event.amount),
                "method": event.method,
                "transactionId": event.transaction_id,
            }
        case OrderShipped():
            return {"trackingId": event.tracking_id, "carrier": event.carrier}
        case OrderCancelled():
            return {"reason": event.reason}
        case ItemAdded():
            return {"item": item_to_wire(event.item), "total": _money(event.total)}
        case ItemRemoved():
            return {"productId": event.product_id, "total": _money(event.total)}


def _placed(data: dict[str, Any]) -> OrderEvent:
    return OrderPlaced(
        order_id=str(data["orderId"]),
        customer_id=str(data["customerId"]),
        items=tuple([item_from_wire(i) for i in data["items"]]),
        total=Decimal(str(data["total"])),
    )


def _paid(data: dict[str, Any]) -> OrderEvent:
    return PaymentTaken(
        amount=Decimal(str(data["amount"])),
        method=str(data["method"]),
        transaction_id=str(data["transactionId"]),
    )


def _shipped(data: dict[str, Any]) -> OrderEvent:
    return OrderShipped(tracking_id=str(data["trackingId"]), carrier=str(data["carrier"]))


def _cancelled(data: dict[str, Any]) -> OrderEvent:
    return OrderCancelled(reason=str(data["reason"]))


def _added(data: dict[str, Any]) -> OrderEvent:
    event: ItemAdded = _new(ItemAdded)
    _added_item(event, item_from_wire(data["item"]))
    _added_total(event, Decimal(str(data["total"])))
    return event


def _removed(data: dict[str, Any]) -> OrderEvent:
    event: ItemRemoved = _new(ItemRemoved)
    _removed_product_id(event, str(data["productId"]))
    _removed_total(event, Decimal(str(data["total"])))
    return event


# One lookup instead of a chain of string comparisons: decoding runs once per event of every
# load and every projected event.
_FROM_WIRE: dict[str, Callable[[dict[str, Any]], OrderEvent]] = {
    "OrderPlaced": _placed,
    "PaymentTaken": _paid,
    "OrderShipped": _shipped,
    "OrderCancelled": _cancelled,
    "ItemAdded": _added,
    "ItemRemoved": _removed,
}


def from_wire(event_type: str, data: dict[str, Any]) -> OrderEvent:
    """The domain event of a current-schema wire payload."""
    build = _FROM_WIRE.get(event_type)
    if build is None:
        raise ValueError(f"unknown event type {event_type!r}")
    return build(data)


def encode(event: OrderEvent, context: EventContext, event_id: uuid.UUID) -> NewEvent:
    """A domain event as a stored event, with the contract's metadata."""
    metadata = {
        "schemaVersion": CURRENT_SCHEMA_VERSION,
        "occurredAt": format_timestamp(context.occurred_at),
        "$correlationId": context.correlation_id,
        "$causationId": context.causation_id,
        "actor": context.actor,
    }
    if context.traceparent is not None:
        metadata[TRACEPARENT_KEY] = context.traceparent
    return NewEvent(
        id=event_id,
        type=type(event).__name__,
        data=orjson.dumps(to_wire(event)),
        metadata=orjson.dumps(metadata),
    )


def _load_json(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    value = orjson.loads(raw)
    return value if isinstance(value, dict) else {"value": value}


def _load_legacy_json(raw: bytes) -> dict[str, Any]:
    """Legacy payloads may hold money as JSON numbers: keep their exact text (orjson and the
    stdlib's default would turn 0.1 into a binary float)."""
    if not raw:
        return {}
    value = json.loads(raw, parse_float=Decimal)
    return value if isinstance(value, dict) else {"value": value}


def _load_unknown_json(raw: bytes) -> dict[str, Any]:
    """A tolerant reader shows what another service wrote even when it is not a JSON object."""
    try:
        return _load_json(raw)
    except orjson.JSONDecodeError:
        return {"raw": raw.decode("utf-8", errors="replace")}


def _plain_json(value: Any) -> Any:
    """A decimal left in an upcast payload (a legacy number no upcaster claimed) as a decimal
    string: today's schema has no fractional JSON numbers, money is always a string."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {key: _plain_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_json(item) for item in value]
    return value


def schema_version_of(event_type: str, metadata: dict[str, Any]) -> int:
    """The schema version an event was written at: none recorded means the legacy version; a
    value that is not a whole number is never guessed at."""
    raw = metadata.get("schemaVersion")
    if raw is None:
        return LEGACY_SCHEMA_VERSION
    if isinstance(raw, bool):
        raise UnknownSchemaVersion(event_type, raw)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    raise UnknownSchemaVersion(event_type, raw)


class _UnknownTypes:
    """Logs each event type this code does not know once per process, not once per event."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def note(self, record: RecordedEvent) -> None:
        if record.type in self._seen:
            return
        self._seen.add(record.type)
        logger.warning(
            # Shown raw, skipped by the fold; logged once per type.
            "event=unknown_event_type type=%s stream=%s version=%d",
            record.type,
            record.stream,
            record.version,
        )


_unknown_types = _UnknownTypes()


def decode_record(record: RecordedEvent) -> DecodedEvent:
    """A stored event in the current schema: upcast through `domain.upcasting`'s registry.

    Raises `UnknownSchemaVersion` for a known type at a schema version this code does not know
    (a query reports it, a projector parks the event). An unknown type decodes with `event=None`
    and its data as written (the tolerant reader)."""
    if record.type not in EVENT_TYPE_NAMES:
        _unknown_types.note(record)
        return DecodedEvent(
            record=record,
            data=_load_unknown_json(record.data),
            metadata=_load_unknown_json(record.metadata),
            event=None,
        )
    metadata = _load_json(record.metadata)
    written_at = metadata.get("schemaVersion")
    if type(written_at) is int and written_at == CURRENT_SCHEMA_VERSION:
        # Today's events (nearly all of them) skip the version checks and the upcasters.
        data = _load_json(record.data)
    elif (schema_version := schema_version_of(record.type, metadata)) == CURRENT_SCHEMA_VERSION:
        data = _load_json(record.data)
    else:
        # Older or unknown versions: the registry upcasts the former and refuses the latter.
        legacy = _load_legacy_json(record.data)
        data = _plain_json(upcast(record.type, schema_version, legacy, stream=record.stream))
        metadata = {**metadata, "schemaVersion": CURRENT_SCHEMA_VERSION}
    return DecodedEvent(
        record=record, data=data, metadata=metadata, event=from_wire(record.type, data)
    )


_CURRENT_METADATA = b'{"schemaVersion":%d,' % CURRENT_SCHEMA_VERSION
"""How `encode` starts the metadata of every event it writes (orjson keeps the key order)."""


def decode_event(record: RecordedEvent) -> OrderEvent | None:
    """Only the domain event of `record`: `decode_record(record).event`, for folds. The metadata
    this code wrote itself in the current schema (it starts with `_CURRENT_METADATA`) is not
    parsed: the fold needs nothing else from it. Anything else takes `decode_record`'s path."""
    if record.type in EVENT_TYPE_NAMES and record.metadata.startswith(_CURRENT_METADATA):
        return from_wire(record.type, _load_json(record.data))
    return decode_record(record).event
