"""`domain.builders`: the fast constructors build exactly what the dataclass constructors build."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from application.codec import EventContext, decode_event, decode_record, encode
from domain.builders import builder
from domain.events import ItemAdded, LineItem, OrderStatus
from domain.order import OrderState
from domain.snapshots import SnapshotPolicy
from eventstore.embedded.schema import row_to_event
from eventstore.port import RecordedEvent


def test_built_values_equal_constructed_ones_and_stay_frozen() -> None:
    item = builder(LineItem)("sku-1", "Widget", Decimal("12.50"), 2)
    assert item == LineItem(product_id="sku-1", name="Widget", price=Decimal("12.50"), qty=2)
    assert hash(item) == hash(
        LineItem(product_id="sku-1", name="Widget", price=Decimal("12.50"), qty=2)
    )
    added = builder(ItemAdded)(item, Decimal("25.00"))
    assert added == ItemAdded(item=item, total=Decimal("25.00"))
    state = builder(OrderState)(
        "o-1", "c-1", OrderStatus.PAID, (item,), Decimal("25.00"), None, None, 3
    )
    assert state == OrderState(
        id="o-1",
        customer_id="c-1",
        status=OrderStatus.PAID,
        items=(item,),
        total=Decimal("25.00"),
        version=3,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.qty = 3  # type: ignore[misc]


def test_a_missing_field_is_an_error_not_an_unset_slot() -> None:
    with pytest.raises(TypeError):
        builder(LineItem)("sku-1", "Widget", Decimal("1"))


def test_classes_that_check_their_fields_keep_their_constructor() -> None:
    with pytest.raises(TypeError, match="__post_init__"):
        builder(SnapshotPolicy)

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    with pytest.raises(TypeError, match="slotted"):
        builder(NoSlots)


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
