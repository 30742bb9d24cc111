"""Writing order events into a real embedded event store, and reading back the reference fold."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from application.codec import DECODE_ERRORS, ORDER_EVENTS, EventContext, decode_record, encode
from domain.events import OrderEvent, OrderStatus, order_stream
from eventstore.port import ANY, EventStore, NewEvent
from projections.mapping import fold_stats, fold_views
from projections.queries import OrderQueries
from projections.views import DashboardStats, OrderView, ViewsUnavailable

CONTEXT = EventContext(
    correlation_id="test", causation_id="test", actor="test", occurred_at=datetime.now(UTC)
)


async def append(store: EventStore, order_id: str, *events: OrderEvent) -> None:
    """Append domain events to an order's stream."""
    await store.append(
        order_stream(order_id), [encode(e, CONTEXT, uuid.uuid4()) for e in events], ANY
    )


async def append_raw(store: EventStore, order_id: str, event: NewEvent) -> None:
    """Append an already encoded event (e.g. a malformed one)."""
    await store.append(order_stream(order_id), [event], ANY)


async def expected_views(store: EventStore) -> tuple[dict[str, OrderView], DashboardStats]:
    """A fresh fold of the log: what the views must equal."""
    records = await store.read_all(filter=ORDER_EVENTS)
    decoded = []
    for record in records:
        try:
            decoded.append(decode_record(record))
        except DECODE_ERRORS:
            continue  # unprojectable: parked by the projector
    views = fold_views(decoded)
    return views, fold_stats(views.values())


async def actual_views(
    queries: OrderQueries, order_ids: list[str]
) -> tuple[dict[str, OrderView], DashboardStats]:
    """What Redis holds for those orders, and its stats."""
    views = {}
    for order_id in order_ids:
        view = await queries.get_order(order_id)
        if view is not None:
            views[order_id] = view
    return views, await queries.dashboard_stats()


async def actual_lists(
    queries: OrderQueries, customer_ids: list[str]
) -> dict[tuple[str | None, OrderStatus | None], list[str]]:
    """Every index's order ids, newest first: all, by status, by customer, by both."""
    lists = {}
    for customer_id in [None, *customer_ids]:
        for status in [None, *OrderStatus]:
            page = await queries.list_orders(customer_id=customer_id, status=status, first=100)
            assert page.total_count == len(page.orders)
            lists[customer_id, status] = [o.id for o in page.orders]
    return lists


def expected_lists(
    views: dict[str, OrderView], customer_ids: list[str]
) -> dict[tuple[str | None, OrderStatus | None], list[str]]:
    """What `actual_lists` must read for these views (at most 100 orders)."""
    newest_first = sorted(views.values(), key=lambda v: v.placed_position, reverse=True)
    return {
        (customer_id, status): [
            v.id
            for v in newest_first
            if customer_id in (None, v.customer_id) and status in (None, v.status)
        ]
        for customer_id in [None, *customer_ids]
        for status in [None, *OrderStatus]
    }


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Wait until `check()` holds (bounded); fails the test otherwise. Views still being filled
    (ViewsUnavailable) count as "not yet"."""
    deadline = time.monotonic() + within

    async def holds() -> bool:
        try:
            return await check()
        except ViewsUnavailable:
            return False

    while not await holds():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
