"""The order a command leaves (`Accepted.order`): folded at the accepted version on the write side,
with the moments the view will show, or honestly unknown where only the stream can tell."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from application.handler import Accepted, CommandHandler
from application.idempotency import IdempotencyIds
from application.repository import OrderRepository
from application.snapshot_store import SnapshotStore
from domain.commands import PlaceOrder, TakePayment
from domain.events import LineItem, OrderStatus
from eventstore.embedded import SQLiteEventStore

PLACED_AT = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
PAID_AT = PLACED_AT + timedelta(minutes=5)
ITEM = LineItem(product_id="p1", name="Pen", price=Decimal("2.50"), qty=4)
PLACE = PlaceOrder(order_id="o-1", customer_id="c-1", items=(ITEM,))
PAY = TakePayment(order_id="o-1", amount=Decimal("10.00"), method="card", transaction_id="t")


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = PLACED_AT

    def __call__(self) -> datetime:
        return self.now


async def run(
    handler: CommandHandler, command: PlaceOrder | TakePayment, key: str | None = None
) -> Accepted:
    return await handler.handle(
        command, expected_version=None, actor="a", correlation_id="c", idempotency_key=key
    )


async def test_the_order_is_folded_at_the_accepted_version_with_its_moments(
    store: SQLiteEventStore,
) -> None:
    clock = Clock()
    handler = CommandHandler(store, OrderRepository(store), clock=clock)
    placed = await run(handler, PLACE)
    assert placed.order is not None
    assert (placed.order.state.version, placed.order.state.status) == (1, OrderStatus.PENDING)
    assert placed.order.placed_at == placed.order.updated_at == PLACED_AT
    clock.now = PAID_AT
    paid = await run(handler, PAY)  # loaded from the stream: its first event gives placed_at
    assert paid.order is not None
    assert (paid.order.state.version, paid.order.state.status) == (2, OrderStatus.PAID)
    assert (paid.order.placed_at, paid.order.updated_at) == (PLACED_AT, PAID_AT)


async def test_after_a_snapshot_the_placement_is_read_from_the_stream(
    store: SQLiteEventStore,
) -> None:
    clock = Clock()
    repository = OrderRepository(store, SnapshotStore(store))
    await run(CommandHandler(store, repository, clock=clock), PLACE)
    snapshot = await repository.snapshot("o-1")
    assert snapshot is not None
    assert await SnapshotStore(store).save(snapshot)
    clock.now = PAID_AT
    paid = await run(CommandHandler(store, repository, clock=clock), PAY)
    assert paid.order is not None
    assert paid.order.placed_at is None  # the load started after the first event
    placed = await repository.placed("o-1")
    assert placed is not None
    assert placed.placed_at == PLACED_AT


async def test_a_keyed_placement_leaves_its_order_to_the_stream(store: SQLiteEventStore) -> None:
    """The store answers a replayed keyed placement with the original's result, so the handler
    cannot vouch for the order it decided (its moments are the retry's): the stream's first
    event is the order the placement left."""
    clock = Clock()
    repository = OrderRepository(store)
    ids = IdempotencyIds.random()  # one deployment's: every process derives the same ids
    first = await run(CommandHandler(store, repository, clock=clock, ids=ids), PLACE, key="k")
    assert first.order is None
    clock.now = PAID_AT
    await run(CommandHandler(store, repository, clock=clock, ids=ids), PAY)
    replayed = await run(CommandHandler(store, repository, clock=clock, ids=ids), PLACE, key="k")
    assert (replayed.event_ids, replayed.version) == (first.event_ids, 1)
    assert replayed.order is None
    placed = await repository.placed("o-1")
    assert placed is not None
    assert (placed.state.version, placed.state.status) == (1, OrderStatus.PENDING)
    assert placed.placed_at == placed.updated_at == PLACED_AT
