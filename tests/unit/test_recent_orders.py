"""The recent-orders decorator: it spares the command path its reads, and the append conflict is
the only correction it needs (on the in-memory store).

A second handler writing to the same store stands for an append of this process still in flight
when a command decides on the remembered order (the only way a remembered order falls behind when
this process is the orders' only writer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from application.handler import Accepted, CommandHandler
from application.idempotency import IdempotencyIds
from application.recent_orders import RecentOrders
from application.repository import LoadedOrder, OrderRepository
from domain.commands import AddItem, CancelOrder, PlaceOrder, ShipOrder, TakePayment
from domain.errors import ConcurrencyConflict, InvalidTransition, OrderAlreadyExists
from domain.events import LineItem, OrderStatus, order_stream
from domain.order import OrderState
from eventstore.memory import InMemoryEventStore
from eventstore.port import (
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StoreUnavailable,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ITEM = LineItem(product_id="p1", name="Pen", price=Decimal("2.50"), qty=4)
DEPLOYMENT_IDS = IdempotencyIds.random()


@pytest.fixture
async def store() -> AsyncIterator[InMemoryEventStore]:
    async with InMemoryEventStore() as opened:
        yield opened


class CountingStore:
    """The store, counting stream reads."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.store = store
        self.reads = 0

    async def read_stream(self, stream: str, **options: Any) -> list[RecordedEvent]:
        self.reads += 1
        return await self.store.read_stream(stream, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class LostAnswerStore:
    """The store, whose next append is written but answered with an outage (a timeout after
    the commit)."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.store = store
        self.lose_next = False

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        result = await self.store.append(stream, events, expected)
        if self.lose_next:
            self.lose_next = False
            raise StoreUnavailable("timed out")
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def cached(store: Any) -> CommandHandler:
    return CommandHandler(
        store, RecentOrders(OrderRepository(store)), clock=lambda: NOW, ids=DEPLOYMENT_IDS
    )


def plain(store: Any) -> CommandHandler:
    return CommandHandler(store, OrderRepository(store), clock=lambda: NOW, ids=DEPLOYMENT_IDS)


async def handle(handler: CommandHandler, command: Any, **kwargs: Any) -> Accepted:
    options: dict[str, Any] = {"expected_version": None, "actor": "t", "correlation_id": "c"}
    options.update(kwargs)
    return await handler.handle(command, **options)


PLACE = PlaceOrder(order_id="o-1", customer_id="c-1", items=(ITEM,))
PAY = TakePayment(order_id="o-1", amount=Decimal("10.00"), method="card", transaction_id="t")
SHIP = ShipOrder(order_id="o-1", tracking_id="T", carrier="DHL")
CANCEL = CancelOrder(order_id="o-1", reason="changed")


async def types(store: InMemoryEventStore) -> list[str]:
    return [r.type for r in await store.read_stream(order_stream("o-1"))]


async def test_a_flow_on_one_handler_reads_nothing(store: InMemoryEventStore) -> None:
    counting = CountingStore(store)
    handler = cached(counting)
    versions = [(await handle(handler, command)).version for command in (PLACE, PAY, SHIP)]
    assert versions == [1, 2, 3]
    assert counting.reads == 0
    assert await types(store) == ["OrderPlaced", "PaymentTaken", "OrderShipped"]


async def test_a_decision_on_a_remembered_order_that_moved_on_is_made_again(
    store: InMemoryEventStore,
) -> None:
    handler = cached(store)
    await handle(handler, PLACE)
    await handle(handler, PAY)
    await handle(plain(store), CANCEL)
    # Remembered paid, the order is cancelled: the append's expectation catches the decision.
    with pytest.raises(InvalidTransition) as refused:
        await handle(handler, SHIP)
    assert refused.value.status is OrderStatus.CANCELLED
    assert await types(store) == ["OrderPlaced", "PaymentTaken", "OrderCancelled"]


async def test_after_a_conflict_the_order_is_read_from_the_store(
    store: InMemoryEventStore,
) -> None:
    counting = CountingStore(store)
    handler = cached(counting)
    await handle(handler, PLACE)
    ink = LineItem(product_id="p2", name="Ink", price=Decimal("1.00"), qty=1)
    await handle(plain(store), AddItem(order_id="o-1", item=ink))
    cancelled = await handle(handler, CANCEL)  # decided on version 1 first: refused by the append
    assert cancelled.version == 3
    assert counting.reads == 1
    assert await types(store) == ["OrderPlaced", "ItemAdded", "OrderCancelled"]


async def test_an_append_whose_answer_was_lost_is_not_remembered(
    store: InMemoryEventStore,
) -> None:
    losing = LostAnswerStore(store)
    handler = cached(losing)
    await handle(handler, PLACE)
    losing.lose_next = True
    with pytest.raises(StoreUnavailable):
        await handle(handler, PAY)
    # The client reads version 2 from a view and says so: the memory must not answer "1".
    assert (await handle(handler, SHIP, expected_version=2)).version == 3
    with pytest.raises(ConcurrencyConflict) as conflict:
        await handle(handler, CANCEL, expected_version=2)
    assert (conflict.value.expected_version, conflict.value.actual_version) == (2, 3)


async def test_placing_an_order_placed_elsewhere_is_refused(store: InMemoryEventStore) -> None:
    await handle(plain(store), PLACE)
    with pytest.raises(OrderAlreadyExists):
        await handle(cached(store), PLACE)
    assert await types(store) == ["OrderPlaced"]


async def test_a_keyed_retry_returns_the_original_and_leaves_no_guess(
    store: InMemoryEventStore,
) -> None:
    handler = cached(store)
    first = await handle(plain(store), PLACE, idempotency_key="k-1")
    await handle(plain(store), PAY)
    assert await handle(handler, PLACE, idempotency_key="k-1") == first
    with pytest.raises(OrderAlreadyExists):
        await handle(handler, PLACE, idempotency_key="k-2")
    assert await types(store) == ["OrderPlaced", "PaymentTaken"]
    assert (await handle(handler, SHIP)).version == 3


class _Stored:
    """Orders for the memory tested on its own: each load answers the version it is told."""

    def __init__(self) -> None:
        self.loads = 0
        self.next: LoadedOrder | None = None

    async def load(self, order_id: str) -> LoadedOrder:
        self.loads += 1
        return self.next or LoadedOrder(state=None, version=0)

    async def append(
        self, order_id: str, expected: int, events: Sequence[NewEvent], after: LoadedOrder | None
    ) -> AppendResult:
        return AppendResult(version=expected + len(events), position=1)


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


async def test_the_memory_keeps_the_newest_version_of_each_order() -> None:
    stored = _Stored()
    recent = RecentOrders(stored)
    await recent.append("o-1", 2, [], loaded(2))
    await recent.append("o-1", 1, [], loaded(1))  # a slower task finishing late
    assert (await recent.load("o-1")).version == 2
    assert stored.loads == 0


async def test_the_memory_is_bounded_and_forgets_the_least_recently_used() -> None:
    stored = _Stored()
    recent = RecentOrders(stored, capacity=2)
    for order_id in ("a", "b"):
        await recent.append(order_id, 1, [], loaded(1, order_id))
    await recent.load("a")  # now "b" is the least recently used
    await recent.append("c", 1, [], loaded(1, "c"))
    assert len(recent) == 2
    await recent.load("a")
    await recent.load("c")
    assert stored.loads == 0
    await recent.load("b")
    assert stored.loads == 1


async def test_an_absent_order_is_never_remembered() -> None:
    stored = _Stored()
    recent = RecentOrders(stored)
    await recent.load("o-1")
    await recent.load("o-1")
    assert stored.loads == 2
    assert len(recent) == 0
    assert len(RecentOrders(stored, capacity=0)) == 0
