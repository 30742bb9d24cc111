"""The event log over HTTP: time travel, an order's events, and the global log's cursors."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from tests.e2e.gql import JSON, Orders, accepted, item, new_id


def parse_time(value: str) -> datetime:
    """A DateTime scalar as an aware datetime."""
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, f"DateTime without an offset: {value}"
    return parsed


def midpoint(a: str, b: str) -> str:
    """The moment halfway between two DateTimes."""
    start, end = parse_time(a), parse_time(b)
    return (start + (end - start) / 2).isoformat()


async def _order_with_history(orders: Orders) -> str:
    """An order placed, amended twice, paid and shipped, with pauses so timestamps differ."""
    order_id = new_id()
    results = []
    for command in (
        orders.place(order_id, customer_id="c-tt", items=[item("p-1", "10.00")]),
        orders.add_item(order_id, item("p-2", "2.50", 2)),
        orders.remove_item(order_id, "p-1"),
        orders.pay(order_id, amount="5.00"),
        orders.ship(order_id),
    ):
        results.append(accepted(await command))
        # Distinct timestamps make "between two events" a real interval, not a tie.
        await asyncio.sleep(0.05)
    assert [r["version"] for r in results] == [1, 2, 3, 4, 5]
    return order_id


async def test_order_at_each_version(orders: Orders) -> None:
    order_id = await _order_with_history(orders)
    expected = [
        ("PENDING", "10.00", ["p-1"], None),
        ("PENDING", "15.00", ["p-1", "p-2"], None),
        ("PENDING", "5.00", ["p-2"], None),
        ("PAID", "5.00", ["p-2"], None),
        ("SHIPPED", "5.00", ["p-2"], f"trk-{order_id}"),
    ]
    for version, (status, total, products, tracking) in enumerate(expected, start=1):
        state = await orders.order_at(order_id, version=version)
        assert state is not None, f"no state at version {version}"
        assert state["version"] == version
        assert state["id"] == order_id
        assert state["customerId"] == "c-tt"
        assert state["status"] == status, (version, state)
        assert state["total"] == total, (version, state)
        assert [i["productId"] for i in state["items"]] == products
        assert state["trackingId"] == tracking
    latest = await orders.order_at(order_id)
    assert latest is not None
    assert latest["version"] == 5
    assert latest["carrier"] == "DHL"
    assert await orders.order_at(new_id("never"), version=1) is None
    assert await orders.order_at(new_id("never")) is None


async def test_order_at_between_timestamps(orders: Orders) -> None:
    order_id = await _order_with_history(orders)
    events = await orders.order_events(order_id)
    times = [e["occurredAt"] for e in events]
    assert times == sorted(times, key=parse_time)

    before = (parse_time(times[0]) - timedelta(seconds=5)).isoformat()
    assert await orders.order_at(order_id, as_of=before) is None

    for version in range(1, len(times)):
        as_of = midpoint(times[version - 1], times[version])
        state = await orders.order_at(order_id, as_of=as_of)
        assert state is not None, f"no state as of {as_of}"
        assert state["version"] == version, (as_of, state)
        assert state["asOf"] is not None
        assert parse_time(state["asOf"]) == parse_time(as_of)

    after = (parse_time(times[-1]) + timedelta(seconds=5)).isoformat()
    state = await orders.order_at(order_id, as_of=after)
    assert state is not None
    assert (state["version"], state["status"]) == (5, "SHIPPED")


async def test_order_events_paging(orders: Orders) -> None:
    order_id = await _order_with_history(orders)
    everything = await orders.order_events(order_id)
    assert [e["version"] for e in everything] == [1, 2, 3, 4, 5]
    assert [e["version"] for e in await orders.order_events(order_id, 2, 2)] == [3, 4]
    assert [e["version"] for e in await orders.order_events(order_id, 4)] == [5]
    assert await orders.order_events(order_id, 5) == []
    assert [e["version"] for e in await orders.order_events(order_id, 0, 1)] == [1]

    pages: list[int] = []
    cursor = 0
    while page := await orders.order_events(order_id, cursor, 2):
        pages.extend(e["version"] for e in page)
        cursor = page[-1]["version"]
    assert pages == [1, 2, 3, 4, 5]


async def test_events_cursor_paging_matches_the_whole_log(orders: Orders) -> None:
    marker = await orders.marker()
    ids = [await _order_with_history(orders) for _ in range(2)]

    whole = await orders.events_after(marker, first=50)
    assert len(whole) == 10
    assert {e["streamId"] for e in whole} == {f"order-{i}" for i in ids}
    positions = [int(e["position"]) for e in whole]
    assert positions == sorted(positions)
    assert len(set(positions)) == 10
    assert int(marker) < positions[0]

    paged: list[JSON] = []
    after = marker
    pages = 0
    while True:
        page = await orders.events_page(after=after, first=3)
        pages += 1
        for edge in page["edges"]:
            assert edge["cursor"] == edge["node"]["position"], "cursors are positions"
        paged.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        after = page["pageInfo"]["endCursor"]
    assert paged == whole
    assert pages in (4, 5)  # 3+3+3+1, plus possibly one empty page at the end

    # `after` takes any Event.position: resuming from the fifth event gives the rest.
    assert await orders.events_after(whole[4]["position"]) == whole[5:]


async def test_events_filtered_by_type_and_time(orders: Orders) -> None:
    marker = await orders.marker()
    ids = [await _order_with_history(orders) for _ in range(2)]
    whole = await orders.events_after(marker)
    assert {e["streamId"] for e in whole} == {f"order-{i}" for i in ids}

    payments = await orders.events_after(marker, types=["PaymentTaken"])
    assert [e["streamId"] for e in payments] == [f"order-{i}" for i in ids]
    assert all(e["type"] == "PaymentTaken" for e in payments)
    two_types = await orders.events_after(marker, types=["OrderPlaced", "OrderShipped"])
    assert two_types == [e for e in whole if e["type"] in ("OrderPlaced", "OrderShipped")]
    assert await orders.events_after(marker, types=["NoSuchEvent"]) == []

    # The second order's events only: since the midpoint after the first's last event.
    second = [e for e in whole if e["streamId"] == f"order-{ids[1]}"]
    since = midpoint(whole[4]["occurredAt"], whole[5]["occurredAt"])
    assert await orders.events_after(marker, since=since) == second
    until = since
    assert await orders.events_after(marker, until=until) == whole[:5]
    window = await orders.events_after(
        marker,
        since=midpoint(whole[1]["occurredAt"], whole[2]["occurredAt"]),
        until=midpoint(whole[3]["occurredAt"], whole[4]["occurredAt"]),
    )
    assert window == whole[2:4]
    both = await orders.events_after(marker, since=since, types=["PaymentTaken"])
    assert both == [payments[1]]
