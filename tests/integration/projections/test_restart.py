"""A Redis restarted empty under a running projector and feed: views exact again, unattended."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from domain.events import PaymentTaken
from eventstore.port import StoreWithGroups
from projections.embedded_redis import start_embedded_redis
from projections.feed import ChangeFeed
from projections.queries import OrderQueries
from tests.integration.projections.store_helpers import append, eventually
from tests.integration.projections.test_runner import matches_log, place, running


async def test_redis_restarted_empty_under_a_running_service(
    store: StoreWithGroups, tmp_path: Path
) -> None:
    server = await start_embedded_redis(tmp_path / "redis")
    redis = server.client()
    feed = ChangeFeed(redis, prefix="orders")
    queries = OrderQueries(redis, feed=feed)
    try:
        await feed.start()
        for n in range(10):
            await place(store, f"o{n}")
        async with running(store, redis, "orders"):
            await eventually(lambda: matches_log(store, queries))
            async with feed.listen(order_id="o1") as listener:
                await server.stop()
                server = await start_embedded_redis(tmp_path / "redis")  # empty: no persistence
                await append(
                    store,
                    "o1",
                    PaymentTaken(amount=Decimal("8.00"), method="card", transaction_id="t"),
                )
                await eventually(lambda: matches_log(store, queries), within=20)
                async with asyncio.timeout(10):
                    while (change := await listener.get()) is not None and change.version < 2:
                        pass  # a RESYNC (the feed reconnected) or the change itself will do
        await eventually(lambda: matches_log(store, queries))
    finally:
        await feed.stop()
        await redis.aclose()
        await server.stop()
