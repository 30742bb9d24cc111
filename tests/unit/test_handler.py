"""The command handler on the in-memory event store: load, decide, append, retry (no I/O, so the
retry and conflict rules run in milliseconds; the store passes the same contract suite as the
others)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from application.codec import EventContext, encode
from application.handler import MAX_ATTEMPTS, Accepted, CommandHandler
from application.recent_orders import RecentOrders
from application.repository import OrderRepository
from domain.commands import AddItem, CancelOrder, PlaceOrder, ShipOrder, TakePayment
from domain.errors import (
    ConcurrencyConflict,
    InvalidTransition,
    NotOrderOwner,
    OrderAlreadyExists,
    OrderNotFound,
    ValidationFailed,
)
from domain.events import ItemAdded, LineItem, OrderStatus, order_stream
from eventstore.memory import InMemoryEventStore
from eventstore.port import (
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    expect_version,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store() -> AsyncIterator[InMemoryEventStore]:
    async with InMemoryEventStore() as opened:
        yield opened


ITEM = LineItem(product_id="p1", name="Pen", price=Decimal("2.50"), qty=4)


def make_handler(store: Any) -> CommandHandler:
    return CommandHandler(store, OrderRepository(store), clock=lambda: NOW)


async def handle(handler: CommandHandler, command: Any, **kwargs: Any) -> Accepted:
    options: dict[str, Any] = {
        "expected_version": None,
        "actor": "alice",
        "correlation_id": "corr-1",
    }
    options.update(kwargs)
    return await handler.handle(command, **options)


def place(order_id: str = "o-1", customer_id: str = "c-1") -> PlaceOrder:
    return PlaceOrder(order_id=order_id, customer_id=customer_id, items=(ITEM,))


def pay(order_id: str = "o-1", amount: str = "10.00") -> TakePayment:
    return TakePayment(order_id=order_id, amount=Decimal(amount), method="card", transaction_id="t")


async def stream_of(store: InMemoryEventStore, order_id: str = "o-1") -> list[RecordedEvent]:
    return await store.read_stream(order_stream(order_id))


async def test_place_pay_ship_appends_one_event_each_with_versions(
    store: InMemoryEventStore,
) -> None:
    handler = make_handler(store)
    placed = await handle(handler, place())
    paid = await handle(handler, pay())
    shipped = await handle(handler, ShipOrder(order_id="o-1", tracking_id="T", carrier="DHL"))
    assert (placed.version, paid.version, shipped.version) == (1, 2, 3)
    assert placed.position < paid.position < shipped.position
    records = await stream_of(store)
    assert [r.type for r in records] == ["OrderPlaced", "PaymentTaken", "OrderShipped"]
    assert [r.id for r in records] == [
        *placed.event_ids,
        *paid.event_ids,
        *shipped.event_ids,
    ]
    assert orjson.loads(records[0].data)["total"] == "10.00"


async def test_every_event_carries_the_contract_metadata(store: InMemoryEventStore) -> None:
    handler = make_handler(store)
    await handle(handler, place(), actor="alice", correlation_id="req-42")
    (record,) = await stream_of(store)
    assert orjson.loads(record.metadata) == {
        "schemaVersion": 2,
        "occurredAt": "2024-05-01T12:00:00.000000Z",
        "$correlationId": "req-42",
        "$causationId": "req-42",
        "actor": "alice",
    }


async def test_an_empty_actor_is_recorded_as_system(store: InMemoryEventStore) -> None:
    await handle(make_handler(store), place(), actor="")
    (record,) = await stream_of(store)
    assert orjson.loads(record.metadata)["actor"] == "system"


async def test_domain_refusals_write_nothing(store: InMemoryEventStore) -> None:
    handler = make_handler(store)
    with pytest.raises(OrderNotFound):
        await handle(handler, pay())
    await handle(handler, place())
    with pytest.raises(OrderAlreadyExists):
        await handle(handler, place())
    with pytest.raises(InvalidTransition) as refused:
        await handle(handler, ShipOrder(order_id="o-1", tracking_id="T", carrier="DHL"))
    assert refused.value.status is OrderStatus.PENDING
    assert len(await stream_of(store)) == 1


async def test_a_bad_order_id_never_becomes_a_stream(store: InMemoryEventStore) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await handle(make_handler(store), place(order_id="../etc"))
    assert refused.value.field == "orderId"
    assert await store.head_position() == 0


async def test_a_stale_expected_version_is_a_conflict_and_writes_nothing(
    store: InMemoryEventStore,
) -> None:
    handler = make_handler(store)
    await handle(handler, place())
    with pytest.raises(ConcurrencyConflict) as conflict:
        await handle(handler, pay(), expected_version=3)
    assert (conflict.value.expected_version, conflict.value.actual_version) == (3, 1)
    assert len(await stream_of(store)) == 1
    accepted = await handle(handler, pay(), expected_version=1)
    assert accepted.version == 2


async def test_a_negative_expected_version_is_bad_input(store: InMemoryEventStore) -> None:
    handler = make_handler(store)
    await handle(handler, place())
    with pytest.raises(ValidationFailed) as refused:
        await handle(handler, pay(), expected_version=-1)
    assert refused.value.field == "expectedVersion"


async def test_idempotent_place_order_returns_the_original_result(
    store: InMemoryEventStore,
) -> None:
    handler = make_handler(store)
    first = await handle(handler, place(), idempotency_key="key-1")
    again = await handle(handler, place(), idempotency_key="key-1", correlation_id="corr-2")
    assert again == first
    assert len(await stream_of(store)) == 1
    with pytest.raises(OrderAlreadyExists):
        await handle(handler, place(), idempotency_key="key-2")
    with pytest.raises(OrderAlreadyExists):
        await handle(handler, place())


async def test_idempotent_retries_racing_each_other_write_once(store: InMemoryEventStore) -> None:
    handler = make_handler(store)
    order_id = handler.new_order_id("c-1", "key-9")
    assert order_id == handler.new_order_id("c-1", "key-9") != handler.new_order_id("c-2", "key-9")
    results = await asyncio.gather(
        *(handle(handler, place(order_id=order_id), idempotency_key="key-9") for _ in range(10))
    )
    assert len(set(results)) == 1
    assert len(await stream_of(store, order_id)) == 1


async def test_an_order_placed_without_a_key_is_not_returned_for_one(
    store: InMemoryEventStore,
) -> None:
    handler = make_handler(store)
    await handle(handler, place())
    with pytest.raises(OrderAlreadyExists):
        await handle(handler, place(), idempotency_key="late-key")


async def test_only_place_order_takes_an_idempotency_key(store: InMemoryEventStore) -> None:
    handler = make_handler(store)
    await handle(handler, place())
    with pytest.raises(ValidationFailed):
        await handle(handler, pay(), idempotency_key="k")


async def test_concurrent_payments_exactly_one_wins(store: InMemoryEventStore) -> None:
    handler = make_handler(store)
    await handle(handler, place())
    outcomes = await asyncio.gather(
        *(handle(handler, pay()) for _ in range(20)), return_exceptions=True
    )
    accepted = [o for o in outcomes if isinstance(o, Accepted)]
    refused = [o for o in outcomes if isinstance(o, InvalidTransition)]
    assert len(accepted) == 1
    assert len(refused) == 19
    assert all(r.status is OrderStatus.PAID for r in refused)
    assert [r.type for r in await stream_of(store)] == ["OrderPlaced", "PaymentTaken"]


class RacingStore:
    """The real store, with a rival writer that appends to the stream just before each of the
    first `races` appends of the handler (so the handler's expectation is stale)."""

    def __init__(
        self, store: InMemoryEventStore, races: int, rival_product: str | None = None
    ) -> None:
        self.store = store
        self.races = races
        self.rival_product = rival_product
        self.appends = 0

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        self.appends += 1
        if self.races > 0:
            self.races -= 1
            current = await self.store.read_stream(stream, backwards=True, limit=1)
            version = current[0].version if current else 0
            rival = encode(
                ItemAdded(
                    item=LineItem(
                        product_id=self.rival_product or f"rival-{self.races}",
                        name="X",
                        price=Decimal(0),
                        qty=1,
                    ),
                    total=Decimal("10.00"),
                ),
                EventContext(
                    correlation_id="rival", causation_id="rival", actor="rival", occurred_at=NOW
                ),
                uuid.uuid4(),
            )
            await self.store.append(stream, [rival], expect_version(version))
        return await self.store.append(stream, events, expected)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_without_expected_version_a_conflict_is_retried_on_fresh_state(
    store: InMemoryEventStore,
) -> None:
    await handle(make_handler(store), place())
    racing = RacingStore(store, races=2)
    accepted = await handle(make_handler(racing), CancelOrder(order_id="o-1", reason="changed"))
    assert racing.appends == 3
    assert accepted.version == 4
    types = [r.type for r in await stream_of(store)]
    assert types == ["OrderPlaced", "ItemAdded", "ItemAdded", "OrderCancelled"]


async def test_a_retry_decides_again_and_can_be_refused(store: InMemoryEventStore) -> None:
    await handle(make_handler(store), place())
    # The rival adds the very product the handler adds: deciding again on fresh state refuses it.
    racing = RacingStore(store, races=1, rival_product="p2")
    ink = LineItem(product_id="p2", name="Ink", price=Decimal(0), qty=1)
    with pytest.raises(InvalidTransition):
        await handle(make_handler(racing), AddItem(order_id="o-1", item=ink))
    assert racing.appends == 1
    assert [r.type for r in await stream_of(store)] == ["OrderPlaced", "ItemAdded"]


async def test_a_conflict_with_an_expected_version_is_not_retried(
    store: InMemoryEventStore,
) -> None:
    await handle(make_handler(store), place())
    racing = RacingStore(store, races=1)
    with pytest.raises(ConcurrencyConflict) as conflict:
        await handle(make_handler(racing), pay(), expected_version=1)
    assert racing.appends == 1
    assert (conflict.value.expected_version, conflict.value.actual_version) == (1, 2)
    assert [r.type for r in await stream_of(store)] == ["OrderPlaced", "ItemAdded"]


async def test_endless_conflicts_end_in_a_concurrency_conflict(store: InMemoryEventStore) -> None:
    await handle(make_handler(store), place())
    racing = RacingStore(store, races=100)
    with pytest.raises(ConcurrencyConflict):
        await handle(make_handler(racing), CancelOrder(order_id="o-1", reason="x"))
    assert racing.appends == MAX_ATTEMPTS
    assert "OrderCancelled" not in [r.type for r in await stream_of(store)]


async def test_a_customer_acts_only_on_its_own_order(store: InMemoryEventStore) -> None:
    handler = make_handler(store)
    await handle(handler, place(customer_id="c-1"))
    with pytest.raises(NotOrderOwner):
        await handle(handler, CancelOrder(order_id="o-1", reason="x", by_customer="c-2"))
    # Judged before the expected version, whose conflict would tell the order's version.
    theirs = CancelOrder(order_id="o-1", reason="x", by_customer="c-2")
    with pytest.raises(NotOrderOwner):
        await handle(handler, theirs, expected_version=7)
    assert len(await stream_of(store)) == 1
    mine = await handle(handler, CancelOrder(order_id="o-1", reason="x", by_customer="c-1"))
    assert mine.version == 2


async def test_a_customer_asking_about_a_missing_order_learns_it_is_missing(
    store: InMemoryEventStore,
) -> None:
    with pytest.raises(OrderNotFound):
        await handle(make_handler(store), CancelOrder(order_id="o-9", reason="x", by_customer="c"))


async def test_a_keyed_retry_with_other_items_leaves_no_wrong_guess(
    store: InMemoryEventStore,
) -> None:
    """A keyed retry with other items is answered with the original placement: the next command
    must be decided on the order as stored, not on the retry's items."""
    handler = CommandHandler(store, RecentOrders(OrderRepository(store)), clock=lambda: NOW)
    await handle(handler, place(), idempotency_key="key-1")
    other = LineItem(product_id="p2", name="Ink", price=Decimal("1.00"), qty=1)
    retry = PlaceOrder(order_id="o-1", customer_id="c-1", items=(other,))
    await handle(handler, retry, idempotency_key="key-1")
    with pytest.raises(InvalidTransition):
        await handle(handler, pay(amount="1.00"))
    paid = await handle(handler, pay(amount="10.00"))
    assert paid.version == 2
