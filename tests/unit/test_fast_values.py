"""The fold's and the codec's values are exactly what the dataclass constructors build."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from application.codec import EventContext, decode_event, decode_record, encode
from application.snapshot_shape import Snapshot, snapshot_from_dict, snapshot_to_dict
from domain.events import (
    ItemAdded,
    ItemRemoved,
    LineItem,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
    PaymentTaken,
)
from domain.order import OrderState, fold
from eventstore.port import RecordedEvent
from eventstore.rows import row_to_event


def test_evolve_sets_every_field_of_the_state_by_name() -> None:
    item = LineItem(product_id="sku-1", name="Widget", price=Decimal("12.50"), qty=2)
    placed = OrderPlaced(order_id="o-1", customer_id="c-1", items=(item,), total=Decimal("25.00"))
    shipped = OrderShipped(tracking_id="T-1", carrier="DHL")
    paid = PaymentTaken(amount=Decimal("25.00"), method="card", transaction_id="t")
    state = fold([placed, paid, shipped])
    assert state == OrderState(
        id="o-1",
        customer_id="c-1",
        status=OrderStatus.SHIPPED,
        items=(item,),
        total=Decimal("25.00"),
        tracking_id="T-1",
        carrier="DHL",
        version=3,
    )
    # Every field is set (an unset slot would raise here), and the value stays frozen.
    assert {f.name: getattr(state, f.name) for f in dataclasses.fields(OrderState)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.version = 4  # type: ignore[misc]


def test_a_row_becomes_the_event_the_constructor_would_build() -> None:
    event_id = uuid.uuid4()
    micros = 1_732_600_000_123_456
    row = (
        7,
        event_id.bytes,
        "order-1",
        3,
        "ItemAdded",
        b"{}",
        b'{"a":1}',
        "application/json",
        micros,
    )
    built = row_to_event(row)
    assert built == RecordedEvent(
        id=event_id,
        stream="order-1",
        type="ItemAdded",
        version=3,
        position=7,
        data=b"{}",
        metadata=b'{"a":1}',
        recorded_at=datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros),
        content_type="application/json",
    )
    assert built.id == event_id
    assert hash(built.id) == hash(event_id)
    assert str(built.id) == str(event_id)
    with pytest.raises(ValueError, match="16 bytes"):
        row_to_event((7, b"short", "order-1", 3, "ItemAdded", b"{}", b"{}", "application/json", 0))


def test_decode_event_is_decode_records_event_on_every_path() -> None:
    context = EventContext(
        correlation_id="corr", causation_id="corr", actor="staff", occurred_at=datetime.now(UTC)
    )
    item = LineItem(product_id="sku-1", name="Widget", price=Decimal("12.50"), qty=2)
    written = encode(ItemAdded(item=item, total=Decimal("25.00")), context, uuid.uuid4())
    current = _recorded(written.type, written.data, written.metadata)
    assert current.metadata.startswith(b'{"schemaVersion":')  # the fast path is taken
    legacy = _recorded(  # OrderPlaced v1 (CONTRACT section 1): no schemaVersion
        "OrderPlaced",
        b'{"customerId": "c-1", "items": ["p-1"], "total": 25.10}',
        b'{"occurredAt": "2023-01-02T03:04:05Z"}',
    )
    unknown = _recorded("SomethingElse", b'{"x":1}', b"{}")
    for record in (current, legacy, unknown):
        assert decode_event(record) == decode_record(record).event
    assert decode_event(current) == ItemAdded(item=item, total=Decimal("25.00"))
    assert decode_event(unknown) is None


def _recorded(type_: str, data: bytes, metadata: bytes) -> RecordedEvent:
    return RecordedEvent(
        id=uuid.uuid4(),
        stream="order-o-1",
        type=type_,
        version=1,
        position=1,
        data=data,
        metadata=metadata,
        recorded_at=datetime.now(UTC),
    )


ITEM = LineItem(product_id="sku-1", name="Widget", price=Decimal("12.50"), qty=2)


@pytest.mark.parametrize(
    "event",
    [
        ItemAdded(item=ITEM, total=Decimal("25.00")),
        ItemRemoved(product_id="sku-1", total=Decimal("0.00")),
        OrderPlaced(order_id="o-1", customer_id="c-1", items=(ITEM,), total=Decimal("25.00")),
        PaymentTaken(amount=Decimal("25.00"), method="card", transaction_id="t-1"),
    ],
)
def test_decoded_values_equal_constructed_ones_field_by_field(event: OrderEvent) -> None:
    context = EventContext(
        correlation_id="corr", causation_id="corr", actor="staff", occurred_at=datetime.now(UTC)
    )
    written = encode(event, context, uuid.uuid4())
    decoded = decode_event(_recorded(written.type, written.data, written.metadata))
    assert decoded == event
    assert hash(decoded) == hash(event)
    assert decoded is not None
    # Every slot is set, each to its own field's value (a swap of two same-typed fields fails).
    for field in dataclasses.fields(event):
        assert getattr(decoded, field.name) == getattr(event, field.name), field.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(decoded, dataclasses.fields(event)[0].name, None)


def test_a_snapshot_read_back_is_what_the_constructors_build() -> None:
    item = LineItem(product_id="sku-1", name="Widget", price=Decimal("12.50"), qty=2)
    state = OrderState(
        id="o-1",
        customer_id="c-1",
        status=OrderStatus.SHIPPED,
        items=(item,),
        total=Decimal("25.00"),
        tracking_id="T-1",
        carrier="DHL",
        version=3,
    )
    snapshot = Snapshot(
        state=state,
        version=3,
        last_event_id=str(uuid.uuid4()),
        max_occurred_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    )
    read = snapshot_from_dict(snapshot_to_dict(snapshot))
    assert read == snapshot
    for value, built in ((read, snapshot), (read.state, state)):
        for field in dataclasses.fields(value):
            assert getattr(value, field.name) == getattr(built, field.name), field.name
