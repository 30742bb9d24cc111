"""The handler's memory of recent orders: it spares reads, and never changes an answer.

Two handlers on one store stand for two processes (EventStoreDB mode): each one's memory goes
stale when the other writes, and every answer must still be the one a fresh read gives.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from application.handler import Accepted, CommandHandler
from application.idempotency import IdempotencyIds
from application.recent_orders import RecentOrders
from application.repository import LoadedOrder, OrderRepository
from domain.commands import CancelOrder, PlaceOrder, ShipOrder, TakePayment
from domain.errors import ConcurrencyConflict, InvalidTransition, OrderAlreadyExists
from domain.events import LineItem, OrderStatus, order_stream
from domain.order import OrderState
from eventstore.embedded import SQLiteEventStore
from eventstore.port import RecordedEvent

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ITEM = LineItem(product_id="p1", name="Pen", price=Decimal("2.50"), qty=4)


class CountingStore:
    """The real store, counting stream reads."""

    def __init__(self, store: SQLiteEventStore) -> None:
        self.store = store
        self.reads = 0

    async def read_stream(self, stream: str, **options: Any) -> list[RecordedEvent]:
        self.reads += 1
        return await self.store.read_stream(stream, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


DEPLOYMENT_IDS = IdempotencyIds.random()
"""The idempotency secret all processes of one deployment share."""


def process(store: Any) -> CommandHandler:
    """A handler with its own memory, as another process would have."""
    orders = RecentOrders(OrderRepository(store))
    return CommandHandler(store, orders, clock=lambda: NOW, ids=DEPLOYMENT_IDS)


async def handle(handler: CommandHandler, command: Any, **kwargs: Any) -> Accepted:
    options: dict[str, Any] = {"expected_version": None, "actor": "t", "correlation_id": "c"}
    options.update(kwargs)
    return await handler.handle(command, **options)


PLACE = PlaceOrder(order_id="o-1", customer_id="c-1", items=(ITEM,))
PAY = TakePayment(order_id="o-1", amount=Decimal("10.00"), method="card", transaction_id="t")
SHIP = ShipOrder(order_id="o-1", tracking_id="T", carrier="DHL")
CANCEL = CancelOrder(order_id="o-1", reason="changed")


async def types(store: SQLiteEventStore) -> list[str]:
    return [r.type for r in await store.read_stream(order_stream("o-1"))]


async def test_a_flow_on_one_handler_reads_nothing(store: SQLiteEventStore) -> None:
    counting = CountingStore(store)
    handler = process(counting)
    versions = [(await handle(handler, command)).version for command in (PLACE, PAY, SHIP)]
    assert versions == [1, 2, 3]
    assert counting.reads == 0
    assert await types(store) == ["OrderPlaced", "PaymentTaken", "OrderShipped"]


async def test_a_refusal_on_a_stale_memory_is_checked_against_the_store(
    store: SQLiteEventStore,
) -> None:
    a, b = process(store), process(store)
    await handle(a, PLACE)
    await handle(b, PAY)
    # `a` remembers the order pending, where shipping is refused; the store says paid.
    shipped = await handle(a, SHIP)
    assert shipped.version == 3
    assert await types(store) == ["OrderPlaced", "PaymentTaken", "OrderShipped"]


async def test_a_decision_on_a_stale_memory_is_decided_again(store: SQLiteEventStore) -> None:
    a, b = process(store), process(store)
    await handle(a, PLACE)
    await handle(a, PAY)
    await handle(b, CANCEL)
    # `a` remembers the order paid and decides to ship; the append's expectation catches it.
    with pytest.raises(InvalidTransition) as refused:
        await handle(a, SHIP)
    assert refused.value.status is OrderStatus.CANCELLED
    assert await types(store) == ["OrderPlaced", "PaymentTaken", "OrderCancelled"]


async def test_a_client_version_is_judged_against_the_store_not_the_memory(
    store: SQLiteEventStore,
) -> None:
    a, b = process(store), process(store)
    await handle(a, PLACE)
    await handle(b, PAY)
    # `a` remembers version 1, the client (rightly) expects 2.
    assert (await handle(a, SHIP, expected_version=2)).version == 3
    with pytest.raises(ConcurrencyConflict) as conflict:
        await handle(a, CANCEL, expected_version=7)
    assert (conflict.value.expected_version, conflict.value.actual_version) == (7, 3)
    assert len(await types(store)) == 3


async def test_placing_an_order_another_process_placed_is_refused(
    store: SQLiteEventStore,
) -> None:
    a, b = process(store), process(store)
    await handle(b, PLACE)
    with pytest.raises(OrderAlreadyExists):
        await handle(a, PLACE)
    assert await types(store) == ["OrderPlaced"]


async def test_an_idempotent_retry_on_another_process_returns_the_original(
    store: SQLiteEventStore,
) -> None:
    a, b = process(store), process(store)
    first = await handle(b, PLACE, idempotency_key="k-1")
    await handle(b, PAY)
    assert await handle(a, PLACE, idempotency_key="k-1") == first
    with pytest.raises(OrderAlreadyExists):
        await handle(a, PLACE, idempotency_key="k-2")
    assert await types(store) == ["OrderPlaced", "PaymentTaken"]
    # And the retrying process acts on the order's real state afterwards.
    assert (await handle(a, SHIP)).version == 3


class _NoStore:
    """Orders for a memory tested on its own: never read."""

    async def load(self, order_id: str, *, guess: bool = False) -> LoadedOrder:
        raise AssertionError("the memory alone never reads")

    def appended(self, order_id: str, after: LoadedOrder | None) -> None:
        pass


_NO_STORE = _NoStore()


def loaded(version: int, order_id: str = "o-1") -> LoadedOrder:
    state = OrderState(
        id=order_id,
        customer_id="c",
        status=OrderStatus.PENDING,
        items=(ITEM,),
        total=Decimal("10.00"),
        version=version,
    )
    return LoadedOrder(state=state, version=version)


def test_the_memory_keeps_the_newest_version_of_each_order() -> None:
    recent = RecentOrders(_NO_STORE)
    recent.remember("o-1", loaded(3))
    recent.remember("o-1", loaded(2))  # a slower task finishing late
    remembered = recent.get("o-1")
    assert remembered is not None
    assert remembered.version == 3
    recent.forget("o-1")
    assert recent.get("o-1") is None


def test_the_memory_is_bounded_and_forgets_the_least_recently_used() -> None:
    recent = RecentOrders(_NO_STORE, capacity=2)
    recent.remember("a", loaded(1, "a"))
    recent.remember("b", loaded(1, "b"))
    assert recent.get("a") is not None  # now "b" is the least recently used
    recent.remember("c", loaded(1, "c"))
    assert len(recent) == 2
    assert recent.get("b") is None
    assert recent.get("a") is not None
    assert recent.get("c") is not None


def test_an_absent_order_is_never_remembered() -> None:
    recent = RecentOrders(_NO_STORE)
    recent.remember("o-1", LoadedOrder(state=None, version=0))
    assert recent.get("o-1") is None
    assert len(RecentOrders(_NO_STORE, capacity=0)) == 0
