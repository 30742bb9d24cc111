"""Streamed applies (projections.apply_stream): batches written ahead of their replies still apply
in order and equal the fold, also when the script is flushed or the connection killed midway."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import cast

import pytest
from redis.asyncio import Redis

from domain.events import OrderPlaced, OrderShipped, PaymentTaken
from eventstore.port import EventStore, RecordedEvent, StoreUnavailable
from projections.apply_stream import ApplyStream, applying
from projections.mapping import fold_stats, fold_views
from projections.packing import Packed, packed_change
from projections.queries import OrderQueries
from projections.recovery import catch_up
from projections.redis_store import CHUNK, ApplyResult, RedisViewStore
from tests.integration.projections.factories import Log, item


def big_log(orders: int) -> Log:
    """Orders placed, paid and shipped, their events interleaved across chunks and batches."""
    log = Log()
    for n in range(orders):
        placed = OrderPlaced(
            order_id=f"o{n}",
            customer_id=f"c{n % 7}",
            items=(item("p1", "2.50", 1 + n % 3),),
            total=Decimal("2.50") * (1 + n % 3),
        )
        log.record(f"o{n}", placed)
    for n in range(orders):
        log.record(f"o{n}", PaymentTaken(amount=Decimal("1"), method="card", transaction_id="t"))
        if n % 2:
            log.record(f"o{n}", OrderShipped(tracking_id=f"TR{n}", carrier="DHL"))
    return log


def batches(log: Log, size: int) -> list[list[Packed]]:
    packed = [packed_change(r) for r in log.records]
    return [packed[start : start + size] for start in range(0, len(packed), size)]


async def assert_views_equal_the_fold(redis: Redis, prefix: str, log: Log) -> None:
    expected = fold_views(log.decoded())
    queries = OrderQueries(redis, prefix=prefix)
    for order_id, view in expected.items():
        assert await queries.get_order(order_id) == view
    assert await queries.dashboard_stats() == fold_stats(expected.values())


async def stream_all(stream: ApplyStream, parts: list[list[Packed]], ahead: int) -> list[str]:
    """Send every batch, at most `ahead` unanswered; the results' letters, in order."""
    letters: list[str] = []
    for part in parts:
        await stream.send(part)
        if stream.in_flight > ahead:
            letters.extend(await stream.receive())
    while stream.in_flight:
        letters.extend(await stream.receive())
    return letters


async def test_batches_sent_ahead_apply_in_order(
    redis: Redis, prefix: str, views: RedisViewStore
) -> None:
    log = big_log(CHUNK)  # several chunks a batch, an order's events in different batches
    async with applying(views) as stream:
        letters = await stream_all(stream, batches(log, CHUNK + 17), ahead=3)
    assert letters == [ApplyResult.OK] * len(log.records)
    await assert_views_equal_the_fold(redis, prefix, log)
    async with applying(views) as stream:
        again = await stream_all(stream, batches(log, 100), ahead=2)
    assert again == [ApplyResult.DUPLICATE] * len(log.records)


async def test_a_flushed_script_is_loaded_and_the_unanswered_chunks_sent_again(
    redis: Redis, prefix: str, views: RedisViewStore
) -> None:
    log = big_log(200)
    parts = batches(log, CHUNK)
    async with applying(views) as stream:
        await stream.send(parts[0])
        assert await stream.receive() == [ApplyResult.OK] * len(parts[0])
        await redis.script_flush()
        letters = await stream_all(stream, parts[1:], ahead=2)
    assert letters == [ApplyResult.OK] * (len(log.records) - len(parts[0]))
    await assert_views_equal_the_fold(redis, prefix, log)


async def test_a_killed_connection_is_replaced_and_nothing_is_lost(
    redis: Redis, prefix: str, views: RedisViewStore
) -> None:
    log = big_log(500)
    parts = batches(log, CHUNK)
    async with applying(views) as stream:
        connection = stream._connection
        if connection is not None:  # a cluster client applies batch by batch, no connection
            await connection.send_command("CLIENT", "ID")
            client_id = await connection.read_response()
            await stream.send(parts[0])
            await stream.send(parts[1])
            assert await redis.client_kill_filter(_id=client_id) == 1
        letters = await stream_all(stream, parts if connection is None else parts[2:], ahead=2)
    # the killed batches were sent again: those that had run before answer duplicates
    assert set(letters) <= {ApplyResult.OK, ApplyResult.DUPLICATE}
    await assert_views_equal_the_fold(redis, prefix, log)


async def test_without_a_namespace_every_change_asks_for_recovery(
    redis: Redis, prefix: str
) -> None:
    views = RedisViewStore(redis, prefix=prefix)  # no namespace: Redis came back empty
    parts = batches(big_log(10), 7)
    async with applying(views) as stream:
        letters = await stream_all(stream, parts, ahead=2)
    assert letters == [ApplyResult.RESET] * sum(len(p) for p in parts)


class FailingLog:
    """A log whose second page cannot be read (the store went away mid catch-up)."""

    def __init__(self, log: Log) -> None:
        self.records = log.records
        self.reads = 0

    async def read_all(
        self, *, from_position: int | None = None, limit: int | None = None, **_: object
    ) -> list[RecordedEvent]:
        self.reads += 1
        if self.reads > 1:
            raise StoreUnavailable("the event store cannot be read")
        start = from_position or 0
        return [r for r in self.records if r.position >= start][:limit]


async def test_a_catch_up_raises_the_log_s_error(views: RedisViewStore) -> None:
    log = FailingLog(big_log(100))
    with pytest.raises(StoreUnavailable):
        await catch_up(cast(EventStore, log), views, from_position=None, page_size=50)


class SlowLog:
    """A log read page by page with a pause: a catch-up over it can be stopped midway."""

    def __init__(self, log: Log) -> None:
        self.records = log.records

    async def read_all(
        self, *, from_position: int | None = None, limit: int | None = None, **_: object
    ) -> list[RecordedEvent]:
        await asyncio.sleep(0.01)
        start = from_position or 0
        return [r for r in self.records if r.position >= start][:limit]


async def test_a_catch_up_stopped_midway_then_run_again_equals_the_fold(
    redis: Redis, prefix: str, views: RedisViewStore
) -> None:
    log = big_log(300)
    running = asyncio.create_task(
        catch_up(cast(EventStore, SlowLog(log)), views, from_position=None, page_size=40)
    )
    await asyncio.sleep(0.05)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    result = await catch_up(cast(EventStore, SlowLog(log)), views, from_position=None)
    assert result.applied + result.duplicates == len(log.records)
    assert result.last_position == log.records[-1].position
    await assert_views_equal_the_fold(redis, prefix, log)
