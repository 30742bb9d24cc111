"""Legacy events written straight through the port come back upcast on every read path.

The stream mixes what old code and other services wrote with today's events: a v1 `OrderPlaced`
(no schemaVersion), an event type this code does not know, then current `ItemAdded` and
`PaymentTaken`. Every path must read the same current-schema data and fold to the same state.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import strawberry
from redis.asyncio import Redis

from api.graphql.schema.event_log import order_events_filter, read_event_page
from api.graphql.schema.line_items import LineItemGQL
from api.graphql.schema.payloads import (
    ItemAddedData,
    OrderPlacedData,
    PaymentTakenData,
    UnknownEventData,
    payload_of,
)
from application.codec import DecodedEvent, decode_record
from application.repository import OrderRepository
from application.snapshot_store import SnapshotStore
from domain.events import LineItem, OrderStatus, order_stream
from domain.upcasting import CURRENT_SCHEMA_VERSION, UnknownSchemaVersion
from eventstore.port import NO_STREAM, EventStore, RecordedEvent, StoreWithGroups
from projections.queries import OrderQueries
from projections.redis_store import RedisViewStore
from projections.runner import ProjectorRunner, RunnerSettings
from tests.integration.upcasting.legacy import UPCAST_ITEMS, legacy_placed, raw_event

META = {"schemaVersion": 2, "occurredAt": "2024-03-01T10:00:00Z", "actor": "test"}
ADDED = {"item": {"id": "p-3", "name": "Lamp", "price": "5.00", "qty": 1}, "total": "30.10"}
PAID = {"amount": "30.10", "method": "card", "transactionId": "t-1"}
UPCAST_PLACED_TYPES = ["OrderPlaced", "LoyaltyPointsGranted", "ItemAdded", "PaymentTaken"]


async def write_legacy_order(store: EventStore) -> str:
    """Append, as old code and another service would have, a four-event order; its id."""
    order_id = f"legacy-{uuid.uuid4().hex[:12]}"
    await store.append(
        order_stream(order_id),
        [
            legacy_placed(),
            raw_event("LoyaltyPointsGranted", {"points": 12}, {"source": "loyalty-service"}),
            raw_event("ItemAdded", ADDED, META),
            raw_event("PaymentTaken", PAID, META),
        ],
        NO_STREAM,
    )
    return order_id


def assert_upcast(events: list[DecodedEvent], order_id: str) -> None:
    """The four events as today's schema reads them."""
    assert [e.record.type for e in events] == UPCAST_PLACED_TYPES
    assert [e.record.version for e in events] == [1, 2, 3, 4]
    placed = events[0]
    assert placed.data == {
        "orderId": order_id,
        "customerId": "cust-legacy",
        "items": UPCAST_ITEMS,
        "total": "25.10",
    }
    assert placed.metadata["schemaVersion"] == CURRENT_SCHEMA_VERSION
    assert events[1].event is None
    assert events[1].data == {"points": 12}
    assert events[2].data == ADDED
    assert events[3].data == PAID


EXPECTED_ITEMS = (
    LineItem(product_id="p-1", name="Unknown", price=Decimal(0), qty=1),
    LineItem(product_id="p-2", name="Unknown", price=Decimal(0), qty=1),
    LineItem(product_id="p-3", name="Lamp", price=Decimal("5.00"), qty=1),
)


@pytest.mark.parametrize("with_snapshots", [False, True])
async def test_repository_paths_read_legacy_events_upcast(
    store: EventStore, with_snapshots: bool
) -> None:
    order_id = await write_legacy_order(store)
    snapshots = SnapshotStore(store) if with_snapshots else None
    repository = OrderRepository(store, snapshots)
    if snapshots is not None:
        snapshot = await repository.snapshot(order_id)
        assert snapshot is not None
        assert await snapshots.save(snapshot)

    loaded = await repository.load(order_id)
    assert loaded.version == 4
    assert loaded.state is not None
    assert loaded.state.items == EXPECTED_ITEMS
    assert loaded.state.total == Decimal("30.10")
    assert loaded.state.status is OrderStatus.PAID
    assert loaded.state.customer_id == "cust-legacy"
    assert loaded.snapshot_version == (4 if with_snapshots else 0)

    # orderAt: at the legacy event alone, and past the unknown type (which advances the version).
    at_1 = await repository.state_at(order_id, version=1)
    assert at_1 is not None
    assert at_1.state is not None
    assert at_1.state.items == EXPECTED_ITEMS[:2]
    assert at_1.state.total == Decimal("25.10")
    at_2 = await repository.state_at(order_id, version=2)
    assert at_2 is not None
    assert at_2.state is not None
    assert (at_2.version, at_2.state.version, at_2.state.items) == (2, 2, EXPECTED_ITEMS[:2])

    # orderEvents and Order.history both read through `history`.
    assert_upcast(await repository.history(order_id), order_id)
    assert await repository.customer_of(order_id) == "cust-legacy"


async def test_events_query_and_live_feeds_read_legacy_events_upcast(store: EventStore) -> None:
    before = await store.head_position()
    order_id = await write_legacy_order(store)

    # The `events` query's page reader: the global log of order events.
    page = await read_event_page(store, after=before, first=100, types=None, since=None, until=None)
    mine = [e for e in page.edges if e.node.stream_id == order_stream(order_id)]
    assert [e.node.type for e in mine] == UPCAST_PLACED_TYPES
    placed_data: object = mine[0].node.stored_data  # as staff see it
    assert placed_data == {
        "orderId": order_id,
        "customerId": "cust-legacy",
        "items": UPCAST_ITEMS,
        "total": "25.10",
    }
    # The typed payload is the same upcast data; an unknown type keeps its data as stored.
    typed = [payload_of(e.node.stored_event, e.node.stored_data) for e in mine]
    assert typed[0] == OrderPlacedData(
        order_id=strawberry.ID(order_id),
        customer_id=strawberry.ID("cust-legacy"),
        items=[LineItemGQL.of(line) for line in EXPECTED_ITEMS[:2]],
        total=Decimal("25.10"),
    )
    assert isinstance(typed[1], UnknownEventData)
    unknown_data: object = typed[1].data
    assert unknown_data == {"points": 12}
    assert isinstance(typed[2], ItemAddedData)
    assert typed[2].item == LineItemGQL.of(EXPECTED_ITEMS[2])
    assert isinstance(typed[3], PaymentTakenData)
    assert typed[3].amount == Decimal("30.10")

    # Both live subscriptions decode what the store's catch-up subscriptions deliver.
    stream_feed = store.subscribe_stream(order_stream(order_id))
    all_feed = store.subscribe_all(after_position=before, filter=order_events_filter(None))
    assert_upcast(await take(stream_feed, 4, order_id), order_id)
    assert_upcast(await take(all_feed, 4, order_id), order_id)


async def take(feed: AsyncIterator[RecordedEvent], count: int, order_id: str) -> list[DecodedEvent]:
    """The first `count` events of the order from a catch-up subscription, decoded."""
    decoded: list[DecodedEvent] = []
    try:
        async with asyncio.timeout(10):
            async for record in feed:
                if record.stream == order_stream(order_id):
                    decoded.append(decode_record(record))
                if len(decoded) == count:
                    break
    finally:
        aclose = getattr(feed, "aclose", None)
        if aclose is not None:
            await aclose()
    return decoded


async def test_projector_views_hold_legacy_orders_upcast(
    store: StoreWithGroups, redis: Redis, prefix: str
) -> None:
    order_id = await write_legacy_order(store)
    views = RedisViewStore(redis, prefix=prefix)
    queries = OrderQueries(redis, prefix=prefix)
    runner = ProjectorRunner(store, views, settings=RunnerSettings(health_interval=0.1))
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        view = await queries.wait_for_version(order_id, 4, wait=15.0)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert view is not None
    assert view.version == 4
    assert view.items == EXPECTED_ITEMS
    assert view.total == Decimal("30.10")
    assert view.status is OrderStatus.PAID
    assert view.customer_id == "cust-legacy"
    assert runner.parked == 0


async def test_a_newer_schema_version_is_a_clear_error_on_every_read(store: EventStore) -> None:
    order_id = f"future-{uuid.uuid4().hex[:12]}"
    future = dict(META, schemaVersion=CURRENT_SCHEMA_VERSION + 1)
    placed = {"orderId": order_id, "customerId": "c", "items": [], "total": "0", "extra": 1}
    await store.append(
        order_stream(order_id), [raw_event("OrderPlaced", placed, future)], NO_STREAM
    )
    repository = OrderRepository(store, SnapshotStore(store))

    with pytest.raises(UnknownSchemaVersion, match=r"OrderPlaced at schema version 3"):
        await repository.load(order_id)
    with pytest.raises(UnknownSchemaVersion):
        await repository.state_at(order_id, version=1)
    with pytest.raises(UnknownSchemaVersion):
        await repository.history(order_id)
