"""Loading through the repository: long streams, unknown event types, time travel, history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from application.codec import EventContext, encode
from application.repository import PAGE_SIZE, OrderRepository
from domain.events import ItemAdded, ItemRemoved, LineItem, OrderEvent, OrderPlaced, order_stream
from eventstore.embedded import SQLiteEventStore
from eventstore.port import NO_STREAM, NewEvent

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PEN = LineItem(product_id="pen", name="Pen", price=Decimal("1.00"), qty=1)
INK = LineItem(product_id="ink", name="Ink", price=Decimal("2.00"), qty=1)


def new(event: OrderEvent, minute: int) -> NewEvent:
    context = EventContext(
        correlation_id="c", causation_id="c", actor="t", occurred_at=T0 + timedelta(minutes=minute)
    )
    return encode(event, context, uuid.uuid4())


def placed(order_id: str = "o-1") -> OrderPlaced:
    return OrderPlaced(order_id=order_id, customer_id="c-1", items=(PEN,), total=Decimal("1.00"))


async def test_a_missing_order_loads_as_none_at_version_zero(store: SQLiteEventStore) -> None:
    loaded = await OrderRepository(store).load("nobody")
    assert (loaded.state, loaded.version) == (None, 0)


async def test_a_stream_longer_than_a_page_folds_completely(store: SQLiteEventStore) -> None:
    events = [new(placed(), 0)]
    for i in range(PAGE_SIZE + 150):
        adding = i % 2 == 0
        event: OrderEvent = (
            ItemAdded(item=INK, total=Decimal("3.00"))
            if adding
            else ItemRemoved(product_id="ink", total=Decimal("1.00"))
        )
        events.append(new(event, 1))
    await store.append(order_stream("o-1"), events, NO_STREAM)
    loaded = await OrderRepository(store).load("o-1")
    assert loaded.version == PAGE_SIZE + 151
    assert loaded.state is not None
    assert loaded.state.version == loaded.version
    assert [item.product_id for item in loaded.state.items] == ["pen"]


async def test_an_unknown_event_type_advances_the_version(store: SQLiteEventStore) -> None:

    stream = order_stream("o-1")
    await store.append(stream, [new(placed(), 0)], NO_STREAM)
    foreign = NewEvent(id=uuid.uuid4(), type="LoyaltyPointsGranted", data=b'{"points": 5}')
    await store.append(stream, [foreign], 1)
    loaded = await OrderRepository(store).load("o-1")
    assert loaded.version == 2
    assert loaded.state is not None
    assert loaded.state.version == 2
    history = await OrderRepository(store).history("o-1")
    assert [(h.record.type, h.event is None) for h in history] == [
        ("OrderPlaced", False),
        ("LoyaltyPointsGranted", True),
    ]


async def test_time_travel_by_version_and_by_moment(store: SQLiteEventStore) -> None:

    await store.append(
        order_stream("o-1"),
        [
            new(placed(), 0),
            new(ItemAdded(item=INK, total=Decimal("3.00")), 10),
            new(ItemRemoved(product_id="pen", total=Decimal("2.00")), 20),
        ],
        NO_STREAM,
    )
    repository = OrderRepository(store)
    at_two = await repository.state_at("o-1", version=2)
    assert at_two is not None
    assert at_two.state is not None
    assert (at_two.version, at_two.state.total) == (2, Decimal("3.00"))
    assert await repository.state_at("o-1", version=4) is None
    assert await repository.state_at("o-1", version=0) is None
    before = await repository.state_at("o-1", as_of=T0 - timedelta(seconds=1))
    assert before is None
    between = await repository.state_at("o-1", as_of=T0 + timedelta(minutes=15))
    assert between is not None
    assert between.version == 2
    exactly = await repository.state_at("o-1", as_of=T0 + timedelta(minutes=20))
    assert exactly is not None
    assert exactly.version == 3
    both = await repository.state_at("o-1", version=1, as_of=T0 + timedelta(minutes=20))
    assert both is not None
    assert both.version == 1


async def test_history_pages_by_version(store: SQLiteEventStore) -> None:

    await store.append(
        order_stream("o-1"),
        [new(placed(), 0), new(ItemAdded(item=INK, total=Decimal("3.00")), 1)],
        NO_STREAM,
    )
    repository = OrderRepository(store)
    assert [h.record.version for h in await repository.history("o-1", from_version=1)] == [2]
    assert [h.record.version for h in await repository.history("o-1", limit=1)] == [1]
    assert await repository.history("o-1", limit=0) == []
    assert await repository.customer_of("o-1") == "c-1"
    assert await repository.customer_of("o-2") is None
