"""The live feed and the live queries: one pub/sub connection fanned out in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from domain.events import OrderPlaced, OrderShipped, OrderStatus, PaymentTaken
from projections.feed import ChangeFeed
from projections.mapping import change_of
from projections.queries import InvalidCursor, OrderQueries
from projections.redis_store import RedisViewStore
from projections.views import DashboardStats
from tests.integration.projections.factories import Log, item


@pytest.fixture
async def feed(redis: Redis, prefix: str) -> AsyncIterator[ChangeFeed]:
    started = ChangeFeed(redis, prefix=prefix)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
def queries(redis: Redis, prefix: str, feed: ChangeFeed) -> OrderQueries:
    return OrderQueries(redis, prefix=prefix, feed=feed)


def place(log: Log, order_id: str, customer: str) -> None:
    log.record(
        order_id,
        OrderPlaced(
            order_id=order_id,
            customer_id=customer,
            items=(item("p", "3.00"),),
            total=Decimal("3.00"),
        ),
    )


def pay(log: Log, order_id: str) -> None:
    log.record(order_id, PaymentTaken(amount=Decimal("3.00"), method="card", transaction_id="t"))


async def test_order_updated_gets_the_current_view_then_each_change(
    views: RedisViewStore, queries: OrderQueries, feed: ChangeFeed
) -> None:
    log = Log()
    place(log, "a", "c1")
    await views.apply(change_of(log.decoded()[0]))
    watch = queries.watch_order("a")
    first = await anext(watch)
    assert first.version == 1
    pay(log, "a")
    await views.apply(change_of(log.decoded()[1]))
    async with asyncio.timeout(5):
        second = await anext(watch)
    assert (second.version, second.status) == (2, OrderStatus.PAID)
    assert feed.listener_count == 1
    await watch.aclose()
    assert feed.listener_count == 0  # a client that goes away leaves nothing behind


async def test_orders_updated_filters_and_wait_for_version_reads_its_write(
    views: RedisViewStore, queries: OrderQueries, feed: ChangeFeed
) -> None:
    log = Log()
    place(log, "a", "c1")
    place(log, "b", "c2")
    pay(log, "a")
    changes = [change_of(d) for d in log.decoded()]
    paid_c1 = queries.watch_orders(customer_id="c1", status=OrderStatus.PAID)
    waiting = asyncio.create_task(queries.wait_for_version("a", 2))
    nexted = asyncio.ensure_future(anext(paid_c1))
    await asyncio.sleep(0.05)  # both are listening before anything is written
    assert not waiting.done()
    for change in changes:
        await views.apply(change)
    async with asyncio.timeout(5):
        view = await waiting
        seen = await nexted
    assert view is not None
    assert view.version == 2
    assert (seen.id, seen.status) == ("a", OrderStatus.PAID)
    await paid_c1.aclose()
    assert feed.listener_count == 0
    missing = await queries.wait_for_version("nope", 1, wait=0.05)
    assert missing is None


async def test_a_status_filter_gets_the_change_that_leaves_it_once_more(
    views: RedisViewStore, queries: OrderQueries, feed: ChangeFeed
) -> None:
    log = Log()
    place(log, "a", "c1")
    pay(log, "a")
    log.record("a", OrderShipped(tracking_id="T", carrier="UPS"))
    place(log, "b", "c1")
    pending = queries.watch_orders(status=OrderStatus.PENDING)
    nexted = asyncio.ensure_future(anext(pending))
    await asyncio.sleep(0.05)  # listening before anything is written
    await views.apply_batch([change_of(d) for d in log.decoded()])
    async with asyncio.timeout(5):
        seen = [await nexted, await anext(pending), await anext(pending)]
    # Placed (enters), paid (leaves: pushed with its new status), then b; the shipment of an
    # order the filter never held again is not pushed.
    assert [(v.id, v.version, v.status) for v in seen] == [
        ("a", 1, OrderStatus.PENDING),
        ("a", 2, OrderStatus.PAID),
        ("b", 1, OrderStatus.PENDING),
    ]
    await pending.aclose()


async def test_dashboard_stats_are_pushed_coalesced(
    views: RedisViewStore, queries: OrderQueries, feed: ChangeFeed
) -> None:
    watch = queries.watch_stats()
    first = await anext(watch)
    assert first.total_orders == 0
    log = Log()
    for n in range(50):
        place(log, f"o{n}", "c")
    await views.apply_batch([change_of(d) for d in log.decoded()])
    seen: list[DashboardStats] = []
    async with asyncio.timeout(5):
        while not seen or seen[-1].total_orders < 50:
            seen.append(await anext(watch))
    assert len(seen) < 50  # fifty changes, a handful of pushes
    await watch.aclose()
    assert feed.listener_count == 0


async def test_many_stats_watchers_share_one_read_per_signal(
    views: RedisViewStore, queries: OrderQueries, feed: ChangeFeed
) -> None:
    # More watchers than the client's connection pool holds (redis-py's default: 100): one read
    # each per signal would fail with "Too many connections".
    watchers = [queries.watch_stats() for _ in range(300)]
    firsts = []
    for start in range(0, len(watchers), 50):  # they arrive over time, each reading once
        firsts += await asyncio.gather(*(anext(w) for w in watchers[start : start + 50]))
    assert {f.total_orders for f in firsts} == {0}
    log = Log()
    place(log, "shared", "c")
    await views.apply(change_of(log.decoded()[0]))
    async with asyncio.timeout(10):
        updated = await asyncio.gather(*(anext(w) for w in watchers))
    assert {u.total_orders for u in updated} == {1}
    for watcher in watchers:
        await watcher.aclose()
    assert feed.listener_count == 0


async def test_pages_are_newest_first_and_cursors_continue(
    views: RedisViewStore, queries: OrderQueries
) -> None:
    log = Log()
    for n in range(9):
        place(log, f"o{n}", f"c{n % 2}")
    for n in range(0, 9, 3):
        pay(log, f"o{n}")
    await views.apply_batch([change_of(d) for d in log.decoded()])
    page = await queries.list_orders(first=4)
    assert [o.id for o in page.orders] == ["o8", "o7", "o6", "o5"]
    assert page.has_next_page
    assert (page.has_previous_page, page.total_count) == (False, 9)
    assert page.start_cursor == page.cursors[0]
    rest = await queries.list_orders(first=10, after=page.end_cursor)
    assert [o.id for o in rest.orders] == ["o4", "o3", "o2", "o1", "o0"]
    assert not rest.has_next_page
    assert (rest.has_previous_page, rest.total_count) == (True, 9)
    both = await queries.list_orders(customer_id="c0", status=OrderStatus.PAID)
    assert [o.id for o in both.orders] == ["o6", "o0"]
    assert both.total_count == 2
    pending = await queries.list_orders(status=OrderStatus.PENDING, first=2)
    assert [o.id for o in pending.orders] == ["o8", "o7"]
    assert (pending.total_count, pending.has_previous_page) == (6, False)
    counted = await queries.list_orders(customer_id="c1", first=0)
    assert (counted.orders, counted.total_count, counted.start_cursor) == ((), 4, None)
    # A cursor whose order left the filtered list still pages on, and knows what came before.
    after_o6 = await queries.list_orders(status=OrderStatus.PENDING, after=both.cursors[0])
    assert [o.id for o in after_o6.orders] == ["o5", "o4", "o2", "o1"]
    assert after_o6.has_previous_page
    assert [o.id for o in (await queries.list_orders(customer_id="c1")).orders] == [
        "o7",
        "o5",
        "o3",
        "o1",
    ]
    with pytest.raises(InvalidCursor):
        await queries.list_orders(after="not-a-cursor")


async def test_every_version_reaches_watchers_when_one_batch_applies_several(
    views: RedisViewStore, queries: OrderQueries, feed: ChangeFeed
) -> None:
    log = Log()
    place(log, "a", "c1")
    await views.apply(change_of(log.decoded()[0]))
    watch = queries.watch_order("a")
    everything = queries.watch_orders(customer_id="c1")
    assert (await anext(watch)).version == 1
    listening = asyncio.ensure_future(anext(everything))
    await asyncio.sleep(0.05)  # the second watcher is listening before anything is written
    assert feed.listener_count == 2
    pay(log, "a")
    log.record("a", OrderShipped(tracking_id="T-1", carrier="UPS"))
    await views.apply_batch([change_of(d) for d in log.decoded()[1:]])  # v2 and v3 at once
    async with asyncio.timeout(5):
        paid, shipped = await anext(watch), await anext(watch)
        seen = [await listening, await anext(everything)]
    assert [(v.version, v.status) for v in (paid, shipped)] == [
        (2, OrderStatus.PAID),
        (3, OrderStatus.SHIPPED),
    ]
    assert shipped.carrier == "UPS"
    assert [v.version for v in seen] == [2, 3]
    await watch.aclose()
    await everything.aclose()
