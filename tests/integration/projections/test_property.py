"""Property: whatever the delivery order, duplication, crashes and Redis losses, the Redis views and
stats equal a fresh fold of the log exactly (and agree with the domain's own fold).

Random command sequences go through `domain.decide` into a real embedded event store; the recorded
events are then delivered to the real Lua apply the way a persistent subscription may deliver them:
in random batches, shuffled, duplicated, with gaps nacked for retry, with the projector "killed"
between applying and acking (so what it applied comes again), and with Redis losing every key
(recovered from the watermark, which the simulated consumer raises to its checkpoint).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from application.codec import ORDER_EVENTS, decode_record
from domain.commands import (
    AddItem,
    CancelOrder,
    Command,
    PlaceOrder,
    RemoveItem,
    ShipOrder,
    TakePayment,
)
from domain.decide import decide
from domain.errors import DomainError
from domain.order import OrderState, evolve
from domain.validation import validate
from eventstore.embedded import SQLiteEventStore
from eventstore.port import RecordedEvent
from projections.decoding import to_change
from projections.mapping import change_of
from projections.queries import OrderQueries
from projections.recovery import recover
from projections.redis_store import ApplyResult, RedisViewStore
from tests.integration.projections.conftest import cluster_url_for, make_client, wipe
from tests.integration.projections.factories import item
from tests.integration.projections.store_helpers import (
    actual_lists,
    actual_views,
    append,
    expected_lists,
    expected_views,
)

ORDERS = 4
PRICES = ["0.00", "0.99", "5.00", "12.50", "100.01"]


@dataclass(frozen=True)
class Intent:
    """A command to try on one order; made concrete against the order's current state."""

    order: int
    kind: str
    product: int
    price: str
    qty: int


intents = st.builds(
    Intent,
    order=st.integers(0, ORDERS - 1),
    kind=st.sampled_from(["place", "place", "pay", "ship", "cancel", "add", "add", "remove"]),
    product=st.integers(0, 4),
    price=st.sampled_from(PRICES),
    qty=st.integers(1, 3),
)


def command_of(intent: Intent, state: OrderState | None) -> Command:
    order_id = f"o{intent.order}"
    line = item(f"p{intent.product}", intent.price, intent.qty)
    match intent.kind:
        case "place":
            return PlaceOrder(order_id=order_id, customer_id=f"c{intent.order % 2}", items=(line,))
        case "pay":
            total = state.total if state else Decimal(0)
            return TakePayment(order_id=order_id, amount=total, method="card", transaction_id="t")
        case "ship":
            return ShipOrder(order_id=order_id, tracking_id=f"T{intent.product}", carrier="DHL")
        case "cancel":
            return CancelOrder(order_id=order_id, reason="no")
        case "add":
            return AddItem(order_id=order_id, item=line)
        case _:
            return RemoveItem(order_id=order_id, product_id=f"p{intent.product}")


async def write_history(store: SQLiteEventStore, plan: list[Intent]) -> dict[str, OrderState]:
    states: dict[str, OrderState] = {}
    for intent in plan:
        order_id = f"o{intent.order}"
        state = states.get(order_id)
        try:
            events = decide(state, validate(command_of(intent, state)))
        except DomainError:
            continue
        await append(store, order_id, *events)
        for event in events:
            state = evolve(state, event)
        assert state is not None
        states[order_id] = state
    return states


def checkpoint_of(records: list[RecordedEvent], acked: set[int]) -> int | None:
    """The newest position up to which every event is acked, as a subscription checkpoints."""
    mark = None
    for record in records:
        if record.position not in acked:
            break
        mark = record.position
    return mark


async def deliver(
    store: SQLiteEventStore, views: RedisViewStore, records: list[RecordedEvent], rng: random.Random
) -> None:
    acked: set[int] = set()
    pending = list(records)
    rounds = 0
    while pending:
        rounds += 1
        assert rounds < 10_000, "delivery did not converge"
        batch = rng.sample(pending, rng.randint(1, min(len(pending), 12)))
        if rng.random() < 0.5:  # in log order: several changes of an order apply in one batch
            batch.sort(key=lambda r: r.position)
        if acked and rng.random() < 0.3:  # redelivery of something already acked
            done = [r for r in records if r.position in acked]
            batch.insert(rng.randrange(len(batch) + 1), rng.choice(done))
        results = await views.apply_batch([to_change(r) for r in batch])
        if ApplyResult.RESET in results:
            await recover(store, views)
            continue  # the batch was not acked: the subscription delivers it again
        if rng.random() < 0.15:
            continue  # killed after applying, before acking: all of it comes again
        for record, result in zip(batch, results, strict=True):
            assert result in (ApplyResult.OK, ApplyResult.DUPLICATE, ApplyResult.GAP)
            if result is not ApplyResult.GAP and record.position not in acked:
                acked.add(record.position)
                pending.remove(record)
        if rng.random() < 0.2:
            mark = checkpoint_of(records, acked)
            if mark is not None:
                await views.raise_watermark(mark)
        if rng.random() < 0.04:
            await wipe(views.redis, views.keys.prefix)  # Redis lost everything
            await recover(store, views)


async def scenario(
    socket: Path, target: str, plan: list[Intent], seed: int, prefix: str, cluster_url: str | None
) -> None:
    redis: Redis = make_client(target, socket, cluster_url)
    with tempfile.TemporaryDirectory() as directory:
        store = await SQLiteEventStore.open(Path(directory))
        try:
            states = await write_history(store, plan)
            records = await store.read_all(filter=ORDER_EVENTS)
            views = RedisViewStore(redis, prefix=prefix)
            if seed % 2:
                await recover(store, views)
            else:
                await views.ensure_namespace()
                await views.raise_watermark(0, mark_ready=True)
            await deliver(store, views, records, random.Random(seed))
            queries = OrderQueries(redis, prefix=prefix)
            expected, expected_stats = await expected_views(store)
            actual, actual_stats = await actual_views(queries, [f"o{n}" for n in range(ORDERS)])
            assert actual == expected
            assert actual_stats == expected_stats
            customers = ["c0", "c1"]
            assert await actual_lists(queries, customers) == expected_lists(expected, customers)
            for order_id, state in states.items():
                view = actual[order_id]
                assert (view.status, view.items, view.total, view.version) == (
                    state.status,
                    state.items,
                    state.total,
                    state.version,
                )
                assert (view.tracking_id, view.carrier) == (state.tracking_id, state.carrier)
            for record in records:  # the pure mapping understands every recorded event
                change_of(decode_record(record))
        finally:
            await store.close()
            await wipe(redis, prefix)
            await redis.aclose()


@settings(
    max_examples=40,
    deadline=None,
    # the fixtures are a session server's socket path and a target name: nothing to reset
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=st.lists(intents, min_size=1, max_size=30), seed=st.integers(0, 2**32))
def test_views_equal_a_fold_of_the_log_whatever_the_delivery(
    embedded_redis_socket: Path,
    redis_target: str,
    prefix: str,
    plan: list[Intent],
    seed: int,
    request: pytest.FixtureRequest,
) -> None:
    cluster_url = cluster_url_for(redis_target, request)
    asyncio.run(
        scenario(embedded_redis_socket, redis_target, plan, seed, f"{prefix}{seed}", cluster_url)
    )
