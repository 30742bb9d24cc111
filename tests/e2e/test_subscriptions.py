"""Live event subscriptions over real websockets: gap-free, in order, resumable."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.gql import EVENT_FIELDS, JSON, Orders, accepted, item, new_id
from tests.e2e.ws import Protocol, graphql_ws
from tests.support.live_server import LiveServer

ORDER_EVENTS_SUB = f"""
subscription OrderEvents($id: ID!, $fromVersion: Int) {{
  orderEvents(id: $id, fromVersion: $fromVersion) {{ {EVENT_FIELDS} }}
}}"""

EVENTS_SUB = f"""
subscription Events($after: String, $types: [String!]) {{
  events(after: $after, types: $types) {{ {EVENT_FIELDS} }}
}}"""


async def _amend(orders: Orders, order_id: str, first: int, count: int) -> None:
    """`count` addItem commands (products p-first ...), each one new version."""
    for n in range(first, first + count):
        accepted(await orders.add_item(order_id, item(f"p-{n}", "1.00")))


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_order_subscriber_joining_mid_stream_gets_every_event_once_in_order(
    server: LiveServer, staff_token: str, orders: Orders, protocol: Protocol
) -> None:
    order_id = new_id()
    midway = asyncio.Event()

    async def commands() -> None:
        try:
            accepted(await orders.place(order_id, items=[item("p-0", "1.00")]))
            await _amend(orders, order_id, 1, 5)  # versions 2..6
        finally:
            midway.set()  # the subscriber connects now, while the commands go on
        await _amend(orders, order_id, 6, 15)  # versions 7..21
        accepted(await orders.pay(order_id, amount="21.00"), 22)
        accepted(await orders.ship(order_id), 23)

    writer = asyncio.create_task(commands())
    try:
        await midway.wait()
        if writer.done():
            writer.result()  # a failed command: raise its error rather than wait for events
        async with graphql_ws(server.ws_url, staff_token, protocol) as ws:
            sub = await ws.subscribe(ORDER_EVENTS_SUB, {"id": order_id})
            received = await sub.events("orderEvents", 23, within=15)
            await writer
            await sub.assert_quiet()
    finally:
        if not writer.done():
            writer.cancel()

    assert [e["version"] for e in received] == list(range(1, 24))
    assert len({e["id"] for e in received}) == 23
    assert received == await orders.order_events(order_id)


async def test_order_subscription_from_a_version(
    server: LiveServer, staff_token: str, orders: Orders
) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id, items=[item("p-0", "1.00")]))
    await _amend(orders, order_id, 1, 3)
    async with graphql_ws(server.ws_url, staff_token) as ws:
        sub = await ws.subscribe(ORDER_EVENTS_SUB, {"id": order_id, "fromVersion": 2})
        history = await sub.events("orderEvents", 2)
        assert [e["version"] for e in history] == [3, 4]
        accepted(await orders.cancel(order_id), 5)
        live = await sub.event("orderEvents")
        assert (live["version"], live["type"]) == (5, "OrderCancelled")
        await sub.stop()
        await sub.assert_quiet()


async def test_events_subscription_resumes_from_the_last_position_seen(
    server: LiveServer, staff_token: str, orders: Orders
) -> None:
    marker = await orders.marker()
    first, second = new_id(), new_id()
    accepted(await orders.place(first))
    received: list[JSON] = []

    async with graphql_ws(server.ws_url, staff_token) as ws:
        sub = await ws.subscribe(EVENTS_SUB, {"after": marker})
        received.append(await sub.event("events"))  # history
        accepted(await orders.pay(first))
        received.append(await sub.event("events"))  # live
    # Disconnected: these happen while nobody listens.
    accepted(await orders.ship(first))
    accepted(await orders.place(second))

    async with graphql_ws(server.ws_url, staff_token) as ws:
        sub = await ws.subscribe(EVENTS_SUB, {"after": received[-1]["position"]})
        received.extend(await sub.events("events", 2))
        accepted(await orders.cancel(second))
        received.append(await sub.event("events"))
        await sub.assert_quiet()

    assert [(e["streamId"], e["type"]) for e in received] == [
        (f"order-{first}", "OrderPlaced"),
        (f"order-{first}", "PaymentTaken"),
        (f"order-{first}", "OrderShipped"),
        (f"order-{second}", "OrderPlaced"),
        (f"order-{second}", "OrderCancelled"),
    ]
    assert received == await orders.events_after(marker)


async def test_events_subscription_filters_types(
    server: LiveServer, staff_token: str, orders: Orders
) -> None:
    marker = await orders.marker()
    order_id = new_id()
    async with graphql_ws(server.ws_url, staff_token) as ws:
        sub = await ws.subscribe(EVENTS_SUB, {"after": marker, "types": ["OrderShipped"]})
        accepted(await orders.place(order_id))
        accepted(await orders.pay(order_id))
        accepted(await orders.ship(order_id))
        shipped = await sub.event("events")
        assert (shipped["streamId"], shipped["type"]) == (f"order-{order_id}", "OrderShipped")
        await sub.assert_quiet()


async def test_two_subscriptions_on_one_socket(
    server: LiveServer, staff_token: str, orders: Orders
) -> None:
    a, b = new_id(), new_id()
    async with graphql_ws(server.ws_url, staff_token) as ws:
        sub_a = await ws.subscribe(ORDER_EVENTS_SUB, {"id": a})
        sub_b = await ws.subscribe(ORDER_EVENTS_SUB, {"id": b})
        accepted(await orders.place(a))
        accepted(await orders.place(b))
        accepted(await orders.cancel(a))
        assert [e["type"] for e in await sub_a.events("orderEvents", 2)] == [
            "OrderPlaced",
            "OrderCancelled",
        ]
        assert (await sub_b.event("orderEvents"))["streamId"] == f"order-{b}"
        await sub_b.assert_quiet()
