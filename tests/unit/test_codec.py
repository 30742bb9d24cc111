"""The codec: domain events to stored events and back, exactly as CONTRACT section 1 spells them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest

from application.codec import EventContext, decode_record, encode
from domain.events import (
    ItemAdded,
    ItemRemoved,
    LineItem,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    PaymentTaken,
)
from eventstore.port import NewEvent, RecordedEvent

WIDGET = LineItem(product_id="p-1", name="Widget", price=Decimal("12.50"), qty=2)
GADGET = LineItem(product_id="p-2", name="Gadget", price=Decimal("0.10"), qty=3)

EVENTS: list[OrderEvent] = [
    OrderPlaced(order_id="o-1", customer_id="c-1", items=(WIDGET, GADGET), total=Decimal("25.30")),
    PaymentTaken(amount=Decimal("25.30"), method="card", transaction_id="t-1"),
    OrderShipped(tracking_id="TRK-1", carrier="DHL"),
    OrderCancelled(reason="changed my mind"),
    ItemAdded(item=GADGET, total=Decimal("25.60")),
    ItemRemoved(product_id="p-1", total=Decimal("0.30")),
]

CONTEXT = EventContext(
    correlation_id="corr-1",
    causation_id="cause-1",
    actor="alice",
    occurred_at=datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
)


def stored(new: NewEvent, stream: str = "order-o-1") -> RecordedEvent:
    return RecordedEvent(
        id=new.id,
        stream=stream,
        type=new.type,
        version=1,
        position=100,
        data=new.data,
        metadata=new.metadata,
        recorded_at=datetime(2024, 5, 1, 10, 30, 16, tzinfo=UTC),
        content_type=new.content_type,
    )


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_round_trip(event: OrderEvent) -> None:
    event_id = uuid.uuid4()
    new = encode(event, CONTEXT, event_id)
    assert (new.id, new.type, new.content_type) == (
        event_id,
        type(event).__name__,
        "application/json",
    )
    decoded = decode_record(stored(new))
    assert decoded.event == event
    assert decoded.occurred_at == CONTEXT.occurred_at


def test_order_placed_wire_shape_has_camel_case_and_money_as_strings() -> None:
    data = orjson.loads(encode(EVENTS[0], CONTEXT, uuid.uuid4()).data)
    assert data == {
        "orderId": "o-1",
        "customerId": "c-1",
        "items": [
            {"id": "p-1", "name": "Widget", "price": "12.50", "qty": 2},
            {"id": "p-2", "name": "Gadget", "price": "0.10", "qty": 3},
        ],
        "total": "25.30",
    }


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        (EVENTS[1], {"amount": "25.30", "method": "card", "transactionId": "t-1"}),
        (EVENTS[2], {"trackingId": "TRK-1", "carrier": "DHL"}),
        (EVENTS[3], {"reason": "changed my mind"}),
        (
            EVENTS[4],
            {"item": {"id": "p-2", "name": "Gadget", "price": "0.10", "qty": 3}, "total": "25.60"},
        ),
        (EVENTS[5], {"productId": "p-1", "total": "0.30"}),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, dict) else "wire",
)
def test_wire_shapes(event: OrderEvent, wire: dict[str, object]) -> None:
    assert orjson.loads(encode(event, CONTEXT, uuid.uuid4()).data) == wire


def test_money_keeps_its_exact_decimal_text() -> None:
    event = PaymentTaken(amount=Decimal("0.10"), method="card", transaction_id="t")
    data = orjson.loads(encode(event, CONTEXT, uuid.uuid4()).data)
    assert data["amount"] == "0.10"
    assert not isinstance(data["amount"], float)
    decoded = decode_record(stored(encode(event, CONTEXT, uuid.uuid4())))
    assert isinstance(decoded.event, PaymentTaken)
    assert decoded.event.amount == Decimal("0.10")
    assert str(decoded.event.amount) == "0.10"


def test_metadata_has_exactly_the_contract_keys() -> None:
    metadata = orjson.loads(encode(EVENTS[0], CONTEXT, uuid.uuid4()).metadata)
    assert metadata == {
        "schemaVersion": 2,
        "occurredAt": "2024-05-01T10:30:15.123456Z",
        "$correlationId": "corr-1",
        "$causationId": "cause-1",
        "actor": "alice",
    }


def test_an_unknown_type_decodes_raw() -> None:
    new = NewEvent(id=uuid.uuid4(), type="LoyaltyPointsGranted", data=b'{"points": 5}')
    decoded = decode_record(stored(new))
    assert decoded.event is None
    assert decoded.data == {"points": 5}
    assert decoded.metadata == {}


def test_occurred_at_falls_back_to_recorded_at() -> None:
    new = NewEvent(
        id=uuid.uuid4(),
        type="OrderCancelled",
        data=b'{"reason": "x"}',
        metadata=b'{"schemaVersion": 2}',
    )
    record = stored(new)
    assert decode_record(record).occurred_at == record.recorded_at
