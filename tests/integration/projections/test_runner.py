"""The projector runner against a real event store (each adapter) and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import orjson
from redis.asyncio import Redis

from domain.events import ItemAdded, OrderPlaced, OrderShipped, PaymentTaken
from eventstore.port import EventStore, NewEvent, StoreWithGroups
from projections.queries import OrderQueries
from projections.redis_store import RedisViewStore
from projections.runner import ProjectorRunner, RunnerSettings
from projections.status import projection_statuses
from tests.integration.projections.conftest import wipe
from tests.integration.projections.factories import item
from tests.integration.projections.store_helpers import (
    actual_views,
    append,
    append_raw,
    eventually,
    expected_views,
)


@contextlib.asynccontextmanager
async def running(
    store: StoreWithGroups, redis: Redis, prefix: str, workers: int = 1
) -> AsyncIterator[list[ProjectorRunner]]:
    views = RedisViewStore(redis, prefix=prefix)
    settings = RunnerSettings(health_interval=0.1)
    runners = [ProjectorRunner(store, views, settings=settings) for _ in range(workers)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in runners]
    try:
        yield runners
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def place(store: EventStore, order_id: str, customer: str = "c1") -> None:
    await append(
        store,
        order_id,
        OrderPlaced(
            order_id=order_id,
            customer_id=customer,
            items=(item("p1", "4.00", 2),),
            total=Decimal("8.00"),
        ),
    )


async def matches_log(store: EventStore, queries: OrderQueries) -> bool:
    expected, stats = await expected_views(store)
    actual, actual_stats = await actual_views(queries, list(expected))
    return actual == expected and actual_stats == stats


async def test_runner_projects_the_log_and_stays_exact(
    store: StoreWithGroups, redis: Redis, prefix: str
) -> None:
    for n in range(20):
        await place(store, f"o{n}", customer=f"c{n % 3}")
    queries = OrderQueries(redis, prefix=prefix)
    async with running(store, redis, prefix, workers=2):
        for n in range(0, 20, 2):
            await append(
                store,
                f"o{n}",
                ItemAdded(item=item("p2", "1.00"), total=Decimal("9.00")),
                PaymentTaken(amount=Decimal("9.00"), method="card", transaction_id="t"),
            )
        await append(store, "o0", OrderShipped(tracking_id="T", carrier="UPS"))
        await eventually(lambda: matches_log(store, queries))
        view = await queries.wait_for_version("o0", 4)
        assert view is not None
        assert view.version == 4
        statuses = await projection_statuses(redis, queries.keys)
        assert [s.name for s in statuses] == ["orders"]


async def test_views_come_back_exact_after_redis_loses_them(
    store: StoreWithGroups, redis: Redis, prefix: str
) -> None:
    for n in range(10):
        await place(store, f"o{n}")
    queries = OrderQueries(redis, prefix=prefix)
    async with running(store, redis, prefix):
        await eventually(lambda: matches_log(store, queries))
        await wipe(redis, prefix)  # what FLUSHALL does to this projection's keys
        await append(
            store, "o3", PaymentTaken(amount=Decimal("8.00"), method="card", transaction_id="t")
        )
        await place(store, "late")
        await eventually(lambda: matches_log(store, queries))
        assert await queries.get_order("o0") is not None


async def test_views_are_rebuilt_on_start_from_an_empty_redis(
    store: StoreWithGroups, redis: Redis, prefix: str
) -> None:
    for n in range(5):
        await place(store, f"o{n}")
    queries = OrderQueries(redis, prefix=prefix)
    async with running(store, redis, prefix):
        await eventually(lambda: matches_log(store, queries))
    # the subscription's checkpoint is past everything now; Redis forgets it all
    await wipe(redis, prefix)
    async with running(store, redis, prefix):
        await eventually(lambda: matches_log(store, queries))


async def test_an_event_that_cannot_be_decoded_is_parked_with_the_error(
    store: StoreWithGroups, redis: Redis, prefix: str
) -> None:
    await place(store, "good")
    await place(store, "bad")
    future = NewEvent(
        id=uuid.uuid4(),
        type="PaymentTaken",
        data=b'{"amount": "8.00", "method": "card", "transactionId": "t"}',
        metadata=orjson.dumps({"schemaVersion": 99}),
    )
    await append_raw(store, "bad", future)
    queries = OrderQueries(redis, prefix=prefix)
    async with running(store, redis, prefix) as (runner,):

        async def parked() -> bool:
            return runner.parked == 1

        await eventually(parked)
        assert runner.last_error is not None
        assert "schema version 99" in runner.last_error
        assert await queries.get_order("good") is not None


async def test_a_projection_no_worker_reported_on_is_listed_as_stopped(
    redis: Redis, prefix: str
) -> None:
    queries = OrderQueries(redis, prefix=prefix)
    (status,) = await projection_statuses(redis, queries.keys)
    assert (status.name, status.state, status.position, status.parked) == (
        "orders",
        "stopped",
        None,
        0,
    )
