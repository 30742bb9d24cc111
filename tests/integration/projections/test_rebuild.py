"""Rebuilding the views beside the serving ones while readers read and writers write."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from domain.events import OrderStatus, PaymentTaken
from eventstore.port import StoreWithGroups
from projections.queries import OrderQueries
from projections.rebuild import RebuildInProgress, rebuild
from projections.redis_store import RedisViewStore
from projections.views import OrderPage
from tests.integration.projections.store_helpers import append, eventually
from tests.integration.projections.test_runner import matches_log, place, running


async def all_pages(queries: OrderQueries, **filters: object) -> list[OrderPage]:
    pages = [await queries.list_orders(first=7, **filters)]  # type: ignore[arg-type]
    while pages[-1].has_next_page:
        after = pages[-1].end_cursor
        pages.append(await queries.list_orders(first=7, after=after, **filters))  # type: ignore[arg-type]
    return pages


async def test_rebuild_while_reading_serves_the_same_answers_throughout(
    store: StoreWithGroups, redis: Redis, prefix: str
) -> None:
    for n in range(60):
        await place(store, f"o{n:02}", customer=f"c{n % 4}")
    for n in range(0, 60, 3):
        await append(
            store,
            f"o{n:02}",
            PaymentTaken(amount=Decimal("8.00"), method="card", transaction_id="t"),
        )
    views = RedisViewStore(redis, prefix=prefix)
    queries = OrderQueries(redis, prefix=prefix)
    async with running(store, redis, prefix):
        await eventually(lambda: matches_log(store, queries))
        before_ns = await views.current_namespace()

        async def snapshot() -> tuple[object, ...]:
            return (
                await all_pages(queries),
                await all_pages(queries, customer_id="c1", status=OrderStatus.PAID),
                await queries.get_order("o30"),
                await queries.dashboard_stats(),
            )

        baseline = await snapshot()
        reads = 0
        done = asyncio.Event()

        async def reader() -> None:
            nonlocal reads
            while not done.is_set():
                assert await snapshot() == baseline
                reads += 1

        reading = asyncio.create_task(reader())
        progress: list[tuple[int, int]] = []
        result = await rebuild(
            store, views, progress=lambda d, t: progress.append((d, t)), grace=1.2, page_size=25
        )
        done.set()
        await reading
        assert reads > 0
        assert result.old_namespace == before_ns
        assert result.namespace != before_ns
        assert await views.current_namespace() == result.namespace
        assert result.events == 80
        assert progress[-1] == (80, 80)
        assert await snapshot() == baseline
        assert [k async for k in redis.scan_iter(match=f"{before_ns}:*")] == []


async def test_rebuild_under_writes_ends_exact(
    store: StoreWithGroups, redis: Redis, prefix: str
) -> None:
    for n in range(40):
        await place(store, f"o{n}")
    views = RedisViewStore(redis, prefix=prefix)
    queries = OrderQueries(redis, prefix=prefix)
    async with running(store, redis, prefix):
        await eventually(lambda: matches_log(store, queries))
        stop = asyncio.Event()

        async def writer() -> None:
            n = 0
            while not stop.is_set():
                await place(store, f"w{n}")
                if n % 2:
                    await append(
                        store,
                        f"w{n - 1}",
                        PaymentTaken(amount=Decimal("8.00"), method="card", transaction_id="t"),
                    )
                n += 1
                await asyncio.sleep(0.002)

        writing = asyncio.create_task(writer())
        await rebuild(store, views, grace=0.1, page_size=10)
        stop.set()
        await writing
        await eventually(lambda: matches_log(store, queries))


async def test_only_one_rebuild_at_a_time(
    store: StoreWithGroups, redis: Redis, prefix: str
) -> None:
    views = RedisViewStore(redis, prefix=prefix)
    await redis.set(views.keys.rebuild_lock, "someone", px=5000)
    with pytest.raises(RebuildInProgress):
        await rebuild(store, views)
