"""Live queries shared between subscribers (one execution per distinct query and rights): each
subscriber still gets exactly what it would get alone."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.gql import Orders, accepted, new_id
from tests.e2e.ws import graphql_ws
from tests.support.live_server import LiveServer

WATCH = "subscription($c: ID) { ordersUpdated(customerId: $c) { id version customerId } }"
STATS = "subscription { dashboardStats { totalOrders position } }"


async def test_subscribers_of_one_query_each_get_every_change_and_one_leaving_stops_nobody(
    server: LiveServer, staff_token: str, orders: Orders
) -> None:
    customer = new_id("c")
    async with (
        graphql_ws(server.ws_url, staff_token) as first_ws,
        graphql_ws(server.ws_url, staff_token) as second_ws,
    ):
        first = await first_ws.subscribe(WATCH, {"c": customer})
        second = await second_ws.subscribe(WATCH, {"c": customer})
        one = new_id()
        accepted(await orders.place(one, customer_id=customer))
        assert (await first.event("ordersUpdated"))["id"] == one
        assert (await second.event("ordersUpdated"))["id"] == one
        await first.stop()
        two = new_id()
        accepted(await orders.place(two, customer_id=customer))
        assert (await second.event("ordersUpdated"))["id"] == two
        await second.assert_quiet()


async def test_a_customer_does_not_share_what_staff_may_see(
    server: LiveServer, staff_token: str, token_for: Callable[..., str], orders: Orders
) -> None:
    mine, theirs = new_id("c"), new_id("c")
    customer_token = token_for(sub=mine, role="customer")
    async with (
        graphql_ws(server.ws_url, staff_token) as staff_ws,
        graphql_ws(server.ws_url, customer_token) as customer_ws,
    ):
        staff_sub = await staff_ws.subscribe(WATCH, {"c": theirs})
        refused = await customer_ws.subscribe(WATCH, {"c": theirs})  # the same document
        message = await refused.message()
        payload = message.payload
        errors = payload if isinstance(payload, list) else (payload or {}).get("errors") or []
        assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"], message
        order = new_id()
        accepted(await orders.place(order, customer_id=theirs))
        assert (await staff_sub.event("ordersUpdated"))["id"] == order
        await refused.assert_quiet()


async def test_customers_watching_without_a_filter_share_nothing(
    server: LiveServer, token_for: Callable[..., str], orders: Orders
) -> None:
    """Two customers send the same document without customerId: each watches its own orders, so
    the one's default filter must never feed the other's stream."""
    one, two = new_id("c"), new_id("c")
    async with (
        graphql_ws(server.ws_url, token_for(sub=one, role="customer")) as one_ws,
        graphql_ws(server.ws_url, token_for(sub=two, role="customer")) as two_ws,
    ):
        one_sub = await one_ws.subscribe(WATCH, {})
        two_sub = await two_ws.subscribe(WATCH, {})
        ones, twos = new_id(), new_id()
        accepted(await orders.place(ones, customer_id=one))
        accepted(await orders.place(twos, customer_id=two))
        assert (await one_sub.event("ordersUpdated"))["id"] == ones
        assert (await two_sub.event("ordersUpdated"))["id"] == twos
        await one_sub.assert_quiet()
        await two_sub.assert_quiet()


async def test_a_late_stats_subscriber_gets_the_current_stats_first(
    server: LiveServer, staff_token: str, orders: Orders
) -> None:
    async with graphql_ws(server.ws_url, staff_token) as early_ws:
        early = await early_ws.subscribe(STATS)
        await early.event("dashboardStats")
        placed = accepted(await orders.place(new_id()))
        while int((await early.event("dashboardStats"))["position"]) < int(placed["position"]):
            pass
        async with graphql_ws(server.ws_url, staff_token) as late_ws:
            late = await late_ws.subscribe(STATS)
            current = await late.event("dashboardStats", within=2)
            assert int(current["position"]) >= int(placed["position"])
