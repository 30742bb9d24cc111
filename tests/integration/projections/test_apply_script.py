"""The Lua apply against a real Redis: duplicates, gaps, out-of-order delivery, stats, indexes."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from application.codec import decode_record
from domain.events import (
    ItemAdded,
    ItemRemoved,
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
    PaymentTaken,
)
from projections.keys import NamespaceKeys, ProjectionKeys
from projections.mapping import change_of, fold_stats, fold_views
from projections.queries import OrderQueries
from projections.redis_store import ApplyResult, RedisViewStore
from projections.views import ViewsUnavailable
from tests.integration.projections.factories import Log, item


def sample_log() -> Log:
    log = Log()
    log.record(
        "a",
        OrderPlaced(
            order_id="a", customer_id="c1", items=(item("p1", "5.00", 2),), total=Decimal("10.00")
        ),
    )
    log.record(
        "b",
        OrderPlaced(
            order_id="b", customer_id="c2", items=(item("p1", "1.50"),), total=Decimal("1.50")
        ),
    )
    log.record("a", ItemAdded(item=item("p2", "2.25", 3), total=Decimal("16.75")))
    log.record("a", PaymentTaken(amount=Decimal("16.75"), method="card", transaction_id="t"))
    log.record("b", OrderCancelled(reason="changed mind"))
    log.record("a", OrderShipped(tracking_id="TR1", carrier="DHL"))
    return log


async def test_apply_in_order_equals_the_fold(redis: Redis, prefix: str) -> None:
    store = RedisViewStore(redis, prefix=prefix)
    ns, created = await store.ensure_namespace()
    assert created
    log = sample_log()
    results = await store.apply_batch([change_of(d) for d in log.decoded()])
    assert results == [ApplyResult.OK] * 6
    queries = OrderQueries(redis, prefix=prefix)
    assert (await redis.hget(NamespaceKeys(ns).meta, "ready")) == b"0"
    with pytest.raises(ViewsUnavailable):  # filled, but not yet marked complete
        await queries.get_order("a")
    assert await store.raise_watermark(0, mark_ready=True) == "ok"
    expected = fold_views(log.decoded())
    for order_id, view in expected.items():
        assert await queries.get_order(order_id) == view
    assert await queries.dashboard_stats() == fold_stats(expected.values())
    shipped = await queries.get_order("a")
    assert shipped is not None
    assert shipped.item_count == 5
    assert shipped.tracking_id == "TR1"


async def test_duplicates_are_skipped_and_never_count_twice(
    redis: Redis, prefix: str, views: RedisViewStore
) -> None:
    changes = [change_of(d) for d in sample_log().decoded()]
    await views.apply_batch(changes)
    again = await views.apply_batch(changes + changes[:3])
    assert set(again) == {ApplyResult.DUPLICATE}
    stats = await OrderQueries(redis, prefix=prefix).dashboard_stats()
    by = {s.status: s for s in stats.by_status}
    assert stats.total_orders == 2
    assert by[OrderStatus.SHIPPED].count == 1
    assert by[OrderStatus.SHIPPED].revenue == Decimal("16.75")
    assert by[OrderStatus.CANCELLED].revenue == Decimal("1.50")
    assert by[OrderStatus.PENDING].count == 0
    assert by[OrderStatus.PENDING].revenue == 0


async def test_gaps_are_refused_until_the_missing_version_arrives(
    redis: Redis, prefix: str, views: RedisViewStore
) -> None:
    changes = [change_of(d) for d in sample_log().decoded()]
    a_events = [c for c in changes if c.order_id == "a"]  # versions 1..4
    assert await views.apply(a_events[2]) == ApplyResult.GAP
    assert await views.apply(a_events[1]) == ApplyResult.GAP
    reordered = [a_events[0], a_events[3], a_events[2], a_events[1], a_events[2], a_events[3]]
    assert await views.apply_batch(reordered) == [
        ApplyResult.OK,
        ApplyResult.GAP,
        ApplyResult.GAP,
        ApplyResult.OK,
        ApplyResult.OK,
        ApplyResult.OK,
    ]
    view = await OrderQueries(redis, prefix=prefix).get_order("a")
    assert view is not None
    assert view.version == 4
    assert view.status is OrderStatus.SHIPPED


async def test_amending_a_pending_order_moves_pending_revenue(
    redis: Redis, prefix: str, views: RedisViewStore
) -> None:
    log = Log()
    log.record(
        "x",
        OrderPlaced(
            order_id="x",
            customer_id="c",
            items=(item("p1", "3.10"), item("p2", "1.00")),
            total=Decimal("4.10"),
        ),
    )
    log.record("x", ItemRemoved(product_id="p1", total=Decimal("1.00")))
    log.record("x", ItemAdded(item=item("p3", "0.125"), total=Decimal("1.125")))
    await views.apply_batch([change_of(d) for d in log.decoded()])
    stats = await OrderQueries(redis, prefix=prefix).dashboard_stats()
    pending = next(s for s in stats.by_status if s.status is OrderStatus.PENDING)
    assert pending.revenue == Decimal("1.125")
    assert pending.count == 1


async def test_without_a_namespace_the_store_asks_for_recovery(redis: Redis, prefix: str) -> None:
    store = RedisViewStore(redis, prefix=prefix)
    change = change_of(sample_log().decoded()[0])
    assert await store.apply(change) == ApplyResult.RESET
    assert await redis.exists(NamespaceKeys(ProjectionKeys(prefix).namespace(1)).order("a")) == 0


async def test_an_order_that_does_not_start_with_placed_is_invalid(
    redis: Redis, prefix: str, views: RedisViewStore
) -> None:
    log = Log()
    log.versions["z"] = 0
    log.record("z", OrderCancelled(reason="?"))
    assert await views.apply(change_of(log.decoded()[0])) == ApplyResult.INVALID


async def test_an_unknown_event_type_moves_only_the_version(
    redis: Redis, prefix: str, views: RedisViewStore
) -> None:
    log = sample_log()
    first = log.records[0]
    stranger = replace(first, type="GiftWrapped", version=2, position=first.position + 1)
    decoded = [log.decoded()[0], decode_record(stranger)]
    assert await views.apply_batch([change_of(d) for d in decoded]) == [ApplyResult.OK] * 2
    assert await OrderQueries(redis, prefix=prefix).get_order("a") == fold_views(decoded)["a"]


async def test_positions_beyond_two_to_the_53_stay_exact(
    redis: Redis, prefix: str, views: RedisViewStore
) -> None:
    log = Log(start=2**63 - 1000)  # EventStoreDB commit positions exceed a double's precision
    log.record(
        "big",
        OrderPlaced(order_id="big", customer_id="c", items=(item("p"),), total=Decimal("10.00")),
    )
    log.record("big", OrderCancelled(reason="x"))
    await views.apply_batch([change_of(d) for d in log.decoded()])
    queries = OrderQueries(redis, prefix=prefix)
    view = await queries.get_order("big")
    assert view is not None
    assert (view.placed_position, view.position) == (2**63 - 1000, 2**63 - 993)
    assert (await queries.dashboard_stats()).position == 2**63 - 993
    page = await queries.list_orders(first=1)
    assert [o.id for o in page.orders] == ["big"]
