"""The read side as the composition root opens it: embedded Redis, feed, queries, a projector."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from domain.events import PaymentTaken
from eventstore.port import StoreWithGroups
from projections.runner import RunnerSettings
from projections.service import open_read_side
from tests.integration.projections.store_helpers import append, eventually
from tests.integration.projections.test_runner import place


async def test_open_read_side_serves_live_views_and_statuses(
    store: StoreWithGroups, tmp_path: Path
) -> None:
    await place(store, "a")
    async with open_read_side(
        store,
        redis_url=None,
        data_dir=tmp_path,
        settings=RunnerSettings(health_interval=0.05),
    ) as read_side:
        view = await read_side.queries.wait_for_version("a", 1)
        assert view is not None
        watch = read_side.queries.watch_order("a")
        assert (await anext(watch)).version == 1
        await append(
            store, "a", PaymentTaken(amount=Decimal("8.00"), method="card", transaction_id="t")
        )
        async with asyncio.timeout(5):
            paid = await anext(watch)
        assert paid.version == 2
        await watch.aclose()

        async def caught_up() -> bool:
            statuses = await read_side.statuses()
            return bool(statuses) and statuses[0].position == paid.position

        await eventually(caught_up)
        (status,) = await read_side.statuses()
        assert (status.name, status.state, status.lag, status.parked) == (
            "orders",
            "running",
            0,
            0,
        )
