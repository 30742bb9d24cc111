"""A stored order event straight to the apply script's arguments, without the domain objects.

`packed_change(record)` equals `change_args(to_change(record))` (`projections.redis_store`),
and raises what that raises: it is the same decoding, spelled for the projector's hot path. An
event of today's schema and a known type is read from its JSON into the script's strings
directly (every value parsed exactly as `application.codec` parses it, so what the codec refuses
is refused here too); anything else (an older schema to upcast, an unknown type, a payload that
does not parse) takes the reference path, which decides, raises and logs as it always did.
tests/integration/projections/test_packing.py holds the two equal, errors included.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from domain.events import ORDER_STREAM_PREFIX, OrderStatus
from domain.upcasting import CURRENT_SCHEMA_VERSION
from eventstore.port import RecordedEvent
from projections.decoding import to_change
from projections.keys import pad_position
from projections.mapping import ChangeKind, money_units
from projections.redis_store import change_args

Packed = list[str]
"""One change as apply.lua takes it (see `change_args`)."""

_PLACED, _STATUS, _SHIPPED = (
    ChangeKind.PLACED.value,
    ChangeKind.STATUS.value,
    ChangeKind.SHIPPED.value,
)
_ADD, _REMOVE = ChangeKind.ADD.value, ChangeKind.REMOVE.value
_PAID, _CANCELLED = OrderStatus.PAID.value, OrderStatus.CANCELLED.value


def _item(raw: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """A line item as `item_to_wire(item_from_wire(raw))` writes it, and its quantity."""
    qty = int(raw["qty"])
    wire = {
        "id": str(raw["id"]),
        "name": str(raw["name"]),
        "price": str(Decimal(str(raw["price"]))),
        "qty": qty,
    }
    return wire, qty


def _money(value: object) -> tuple[str, str, str]:
    """An amount as the script takes it: its text, its units and their scale."""
    amount = Decimal(str(value))
    units, scale = money_units(amount)
    return str(amount), str(units), str(scale)


def _placed(data: dict[str, Any]) -> tuple[str, ...]:
    str(data["orderId"])  # the codec reads it: an event without one is refused here too
    customer = str(data["customerId"])
    items = [_item(raw) for raw in data["items"]]
    total, units, scale = _money(data["total"])
    wire = orjson.dumps([item for item, _ in items]).decode()
    count = sum(qty for _, qty in items)
    return (_PLACED, customer, wire, total, units, scale, str(count))


def _paid(data: dict[str, Any]) -> tuple[str, ...]:
    Decimal(str(data["amount"]))
    str(data["method"])
    str(data["transactionId"])
    return (_STATUS, _PAID, "", "", "", "", "")


def _cancelled(data: dict[str, Any]) -> tuple[str, ...]:
    str(data["reason"])
    return (_STATUS, _CANCELLED, "", "", "", "", "")


def _shipped(data: dict[str, Any]) -> tuple[str, ...]:
    tracking, carrier = str(data["trackingId"]), str(data["carrier"])
    return (_SHIPPED, tracking, carrier, "", "", "", "")


def _added(data: dict[str, Any]) -> tuple[str, ...]:
    item, qty = _item(data["item"])
    total, units, scale = _money(data["total"])
    return (_ADD, orjson.dumps(item).decode(), total, units, scale, str(qty), "")


def _removed(data: dict[str, Any]) -> tuple[str, ...]:
    product_id = str(data["productId"])
    total, units, scale = _money(data["total"])
    return (_REMOVE, product_id, total, units, scale, "", "")


_BY_TYPE: dict[str, Callable[[dict[str, Any]], tuple[str, ...]]] = {
    "OrderPlaced": _placed,
    "PaymentTaken": _paid,
    "OrderCancelled": _cancelled,
    "OrderShipped": _shipped,
    "ItemAdded": _added,
    "ItemRemoved": _removed,
}


_CODEC_FORM = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z"
)
"""A time as `application.timestamps.format_timestamp` writes it (UTC, microseconds kept), its
clock's fields in range."""


@functools.lru_cache(maxsize=1024)
def _real_day(day: str) -> bool:
    """Whether the date `day` (YYYY-MM-DD) exists (February 30th does not); cached, as a log's
    events fall on few days."""
    try:
        date.fromisoformat(day)
    except ValueError:
        return False
    return True


def _occurred_at(metadata: dict[str, Any], record: RecordedEvent) -> str:
    """`DecodedEvent.occurred_at` as `change_args` writes it."""
    raw = metadata.get("occurredAt")
    if isinstance(raw, str):
        # The codec's own form is its isoformat() with 'Z' for '+00:00', unless the microseconds
        # are 0 (isoformat leaves them out): spelt so without parsing, a third of the cost.
        if (
            len(raw) == 27
            and raw[20:26] != "000000"
            and _CODEC_FORM.fullmatch(raw)
            and _real_day(raw[:10])
        ):
            return raw[:26] + "+00:00"
        try:
            return datetime.fromisoformat(raw).isoformat()
        except ValueError:
            pass
    return record.recorded_at.isoformat()


def _fast(record: RecordedEvent) -> Packed | None:
    """The packed change of a current-schema event of a known type; None for any other (the
    kind and its six arguments come from the type's builder)."""
    build = _BY_TYPE.get(record.type)
    if build is None or not record.stream.startswith(ORDER_STREAM_PREFIX):
        return None
    metadata = orjson.loads(record.metadata) if record.metadata else None
    if not isinstance(metadata, dict):
        return None
    written_at = metadata.get("schemaVersion")
    if type(written_at) is not int or written_at != CURRENT_SCHEMA_VERSION:
        return None
    data = orjson.loads(record.data) if record.data else None
    if not isinstance(data, dict):
        return None
    return [
        record.stream[len(ORDER_STREAM_PREFIX) :],
        str(record.version),
        pad_position(record.position),
        _occurred_at(metadata, record),
        *build(data),
    ]


def packed_change(record: RecordedEvent) -> Packed:
    """`change_args(to_change(record))`; raises one of `DECODE_ERRORS` if the event has none."""
    try:
        packed = _fast(record)
    except Exception:  # the reference path below decides, and raises what it raises
        packed = None
    if packed is None:
        return change_args(to_change(record))
    return packed
