"""The read model over real HTTP and websockets: read your write, every Order field, paging and
filters, access, exact stats, projection status, live subscriptions.

The query texts and helpers at the top are shared with `test_read_model_recovery`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Final

import pytest

from tests.e2e.gql import (
    JSON,
    GraphQLClient,
    Orders,
    accepted,
    error_codes,
    item,
    new_id,
    no_data,
)
from tests.e2e.ws import Protocol, graphql_ws
from tests.support.live_server import LiveServer

ORDER_FIELDS: Final = """
  id customerId status itemCount total trackingId carrier createdAt updatedAt version position
  items { productId name price qty }
"""

ORDER: Final = f"""
query Order($id: ID!, $minVersion: Int) {{
  order(id: $id, minVersion: $minVersion) {{ {ORDER_FIELDS} }}
}}"""

ORDER_HISTORY: Final = """
query OrderHistory($id: ID!, $minVersion: Int) {
  order(id: $id, minVersion: $minVersion) {
    id version history { id streamId type version position occurredAt data metadata }
  }
}"""

ORDERS: Final = f"""
query Orders($customerId: ID, $status: OrderStatus, $first: Int, $after: String) {{
  orders(customerId: $customerId, status: $status, first: $first, after: $after) {{
    edges {{ cursor node {{ {ORDER_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""

STATS_FIELDS: Final = "totalOrders position byStatus { status count revenue }"

STATS: Final = f"query {{ dashboardStats {{ {STATS_FIELDS} }} }}"

PROJECTIONS: Final = "query { projections { name position lag state parked lastError } }"

ORDER_UPDATED: Final = f"""
subscription OrderUpdated($id: ID!) {{ orderUpdated(id: $id) {{ {ORDER_FIELDS} }} }}"""

ORDERS_UPDATED: Final = f"""
subscription OrdersUpdated($customerId: ID, $status: OrderStatus) {{
  ordersUpdated(customerId: $customerId, status: $status) {{ {ORDER_FIELDS} }}
}}"""

STATS_UPDATED: Final = f"subscription {{ dashboardStats {{ {STATS_FIELDS} }} }}"


async def read_order(gql: GraphQLClient, order_id: str, min_version: int | None = None) -> JSON:
    """`order(id, minVersion)`, which must exist."""
    data = await gql.data(ORDER, {"id": order_id, "minVersion": min_version})
    order: JSON | None = data["order"]
    assert order is not None, f"order {order_id} not in the read model"
    return order


async def all_orders(gql: GraphQLClient, **filters: object) -> list[JSON]:
    """Every order the filters let through, newest first, following the cursors."""
    found: list[JSON] = []
    after: str | None = None
    for _ in range(1000):
        data = await gql.data(ORDERS, {**filters, "first": 50, "after": after})
        page = data["orders"]
        found.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("orders paging did not end within 1000 pages")


async def stats(gql: GraphQLClient) -> JSON:
    """`dashboardStats`."""
    data = await gql.data(STATS)
    result: JSON = data["dashboardStats"]
    return result


async def stats_at(gql: GraphQLClient, position: str, within: float = 10.0) -> JSON:
    """`dashboardStats` once it reflects the log up to `position` at least."""
    deadline = time.monotonic() + within
    while True:
        current = await stats(gql)
        if int(current["position"]) >= int(position):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"stats stuck at {current['position']}, wanted {position}")
        await asyncio.sleep(0.02)


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 15.0, every: float = 0.1
) -> None:
    """Poll `check` until it holds, or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(every)


# -- read your write, every field ------------------------------------------------------------


async def test_a_mutation_then_order_with_min_version_reads_the_write(orders: Orders) -> None:
    order_id = new_id()
    placed = accepted(await orders.place(order_id, customer_id="c-ryw"), 1)
    order = await read_order(orders.gql, order_id, min_version=placed["version"])
    assert (order["id"], order["version"], order["status"]) == (order_id, 1, "PENDING")
    paid = accepted(await orders.pay(order_id), 2)
    order = await read_order(orders.gql, order_id, min_version=paid["version"])
    assert (order["version"], order["status"], order["position"]) == (2, "PAID", paid["position"])


async def test_every_order_field_after_place_amend_pay_ship(orders: Orders) -> None:
    order_id = new_id()
    accepted(
        await orders.place(
            order_id,
            customer_id="c-fields",
            items=[item("p-1", "12.50", 2), item("p-2", "4.99", 1, name="Gadget")],
        )
    )
    accepted(await orders.add_item(order_id, item("p-3", "1.25", 4, name="Bolt")), 2)
    accepted(await orders.remove_item(order_id, "p-2"), 3)
    accepted(await orders.pay(order_id, amount="30.00"), 4)
    shipped = accepted(await orders.ship(order_id, trackingId="TRK-9", carrier="UPS"), 5)

    order = await read_order(orders.gql, order_id, min_version=5)
    created, updated = (datetime.fromisoformat(order[k]) for k in ("createdAt", "updatedAt"))
    assert created.utcoffset() is not None
    assert created <= updated
    del order["createdAt"], order["updatedAt"]
    assert order == {
        "id": order_id,
        "customerId": "c-fields",
        "status": "SHIPPED",
        "itemCount": 6,
        "total": "30.00",
        "trackingId": "TRK-9",
        "carrier": "UPS",
        "version": 5,
        "position": shipped["position"],
        "items": [
            {"productId": "p-1", "name": "Widget", "price": "12.50", "qty": 2},
            {"productId": "p-3", "name": "Bolt", "price": "1.25", "qty": 4},
        ],
    }


async def test_history_is_the_orders_events_oldest_first(orders: Orders) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id))
    accepted(await orders.pay(order_id))
    data = await orders.gql.data(ORDER_HISTORY, {"id": order_id, "minVersion": 2})
    history = data["order"]["history"]
    assert [(e["type"], e["version"]) for e in history] == [("OrderPlaced", 1), ("PaymentTaken", 2)]
    assert history == await orders.order_events(order_id)  # the same events the log serves
    assert history[0]["data"]["items"] == [
        {"id": "p-1", "name": "Widget", "price": "10.00", "qty": 1}
    ]


async def test_an_unknown_order_is_null(gql: GraphQLClient) -> None:
    data = await gql.data(ORDER, {"id": new_id("missing")})
    assert data["order"] is None


# -- orders(): paging, filters, newest first ---------------------------------------------------


async def test_orders_newest_first_paged_and_filtered(orders: Orders) -> None:
    customer = new_id("c")
    placed = [new_id() for _ in range(5)]
    for order_id in placed:
        accepted(await orders.place(order_id, customer_id=customer))
    for order_id in placed[1:3]:
        accepted(await orders.pay(order_id))
    accepted(await orders.place(new_id(), customer_id=new_id("other")))
    await read_order(orders.gql, placed[2], min_version=2)

    newest_first = list(reversed(placed))
    seen: list[str] = []
    after = None
    for expected_more in (True, True, False):
        data = await orders.gql.data(ORDERS, {"customerId": customer, "first": 2, "after": after})
        page = data["orders"]
        seen.extend(edge["node"]["id"] for edge in page["edges"])
        assert page["pageInfo"]["hasNextPage"] is expected_more
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        after = page["pageInfo"]["endCursor"]
    assert seen == newest_first

    paid = await all_orders(orders.gql, customerId=customer, status="PAID")
    assert [o["id"] for o in paid] == [placed[2], placed[1]]
    await assert_page_info(orders.gql, customer, placed)
    pending = await all_orders(orders.gql, customerId=customer, status="PENDING")
    assert [o["id"] for o in pending] == [placed[4], placed[3], placed[0]]
    everyone_paid = {o["id"] for o in await all_orders(orders.gql, status="PAID")}
    assert {placed[1], placed[2]} <= everyone_paid
    assert everyone_paid.isdisjoint({placed[0], placed[3], placed[4]})


PAGE: Final = """
query Page($customerId: ID, $status: OrderStatus, $first: Int, $after: String) {
  orders(customerId: $customerId, status: $status, first: $first, after: $after) {
    totalCount edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def assert_page_info(gql: GraphQLClient, customer: str, placed: list[str]) -> None:
    """totalCount counts the filtered list over all pages; hasPreviousPage and startCursor
    describe where a page starts. `placed`: the customer's five orders, the 2nd and 3rd paid."""

    async def page(**args: object) -> JSON:
        data = await gql.data(PAGE, {"customerId": customer, **args})
        result: JSON = data["orders"]
        return result

    first = await page(first=2)
    assert first["totalCount"] == 5
    assert first["pageInfo"]["startCursor"] == first["edges"][0]["cursor"]
    assert (first["pageInfo"]["hasPreviousPage"], first["pageInfo"]["hasNextPage"]) == (False, True)
    second = await page(first=2, after=first["pageInfo"]["endCursor"])
    assert [e["node"]["id"] for e in second["edges"]] == [placed[2], placed[1]]
    assert second["totalCount"] == 5
    assert second["pageInfo"]["hasPreviousPage"] is True
    assert second["pageInfo"]["startCursor"] == second["edges"][0]["cursor"]
    assert (await page(status="PAID", first=1))["totalCount"] == 2
    assert (await page(status="PENDING", first=0))["totalCount"] == 3
    empty = await page(status="CANCELLED")
    assert (empty["totalCount"], empty["edges"], empty["pageInfo"]["startCursor"]) == (0, [], None)


@pytest.mark.parametrize(
    ("variables", "argument"),
    [
        ({"after": "not-a-cursor!"}, "after"),
        ({"after": "MTIz"}, "after"),
        ({"first": 101}, "first"),
    ],
)
async def test_bad_orders_arguments_are_client_errors(
    gql: GraphQLClient, variables: JSON, argument: str
) -> None:
    result = await gql.execute(ORDERS, variables)
    assert no_data(result)
    assert error_codes(result) == ["BAD_USER_INPUT"]
    assert result["errors"][0]["extensions"]["argument"] == argument


# -- access -------------------------------------------------------------------------------------


async def test_customers_read_their_own_orders_only(
    gql: GraphQLClient, orders: Orders, token_for: Callable[..., str]
) -> None:
    mine, theirs = new_id("c"), new_id("c")
    my_order, their_order = new_id(), new_id()
    accepted(await orders.place(my_order, customer_id=mine))
    accepted(await orders.place(their_order, customer_id=theirs))
    await read_order(gql, their_order, min_version=1)
    me = gql.with_token(token_for(sub=mine, role="customer"))

    assert (await read_order(me, my_order, min_version=1))["customerId"] == mine
    refused_reads = [
        (ORDER, {"id": their_order}),
        (ORDERS, {"customerId": theirs}),
        (STATS, None),
        (PROJECTIONS, None),
    ]
    for query, variables in refused_reads:
        result = await me.execute(query, variables)
        assert error_codes(result) == ["FORBIDDEN"], (query, result)
        assert no_data(result)
    for variables in ({}, {"customerId": mine}):
        listed = await all_orders(me, **variables)
        assert [o["id"] for o in listed] == [my_order]


async def test_customers_watch_their_own_orders_only(
    server: LiveServer, orders: Orders, token_for: Callable[..., str]
) -> None:
    mine, theirs = new_id("c"), new_id("c")
    their_order = new_id()
    accepted(await orders.place(their_order, customer_id=theirs))
    async with graphql_ws(server.ws_url, token_for(sub=mine, role="customer")) as ws:
        for query, variables in [
            (ORDER_UPDATED, {"id": their_order}),
            (ORDERS_UPDATED, {"customerId": theirs}),
            (STATS_UPDATED, {}),
        ]:
            sub = await ws.subscribe(query, variables)
            message = await sub.message()
            payload = message.payload
            errors = payload if isinstance(payload, list) else (payload or {}).get("errors") or []
            assert message.kind in ("error", "next"), message
            assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"], message
        allowed = await ws.subscribe(ORDERS_UPDATED, {"customerId": mine})
        # Without customerId a customer watches its own orders, as `orders` lists them.
        defaulted = await ws.subscribe(ORDERS_UPDATED, {})
        accepted(await orders.place(new_id(), customer_id=theirs))
        my_order = new_id()
        accepted(await orders.place(my_order, customer_id=mine))
        assert (await allowed.event("ordersUpdated"))["id"] == my_order
        assert (await defaulted.event("ordersUpdated"))["id"] == my_order


# -- stats and statuses --------------------------------------------------------------------------


def _by_status(snapshot: JSON) -> dict[str, tuple[int, Decimal]]:
    return {s["status"]: (s["count"], Decimal(s["revenue"])) for s in snapshot["byStatus"]}


async def test_dashboard_stats_are_exact_after_a_batch(orders: Orders) -> None:
    before = await stats_at(orders.gql, await orders.marker())
    lines = [item("p-1", "19.99", 1), item("p-2", "0.01", 3)]  # total 20.02
    ids = [new_id() for _ in range(7)]
    for order_id in ids:
        accepted(await orders.place(order_id, items=lines))
    for order_id in ids[:5]:
        accepted(await orders.pay(order_id, amount="20.02"))
    for order_id in ids[:2]:
        accepted(await orders.ship(order_id))
    accepted(await orders.cancel(ids[2]))
    last = accepted(await orders.cancel(ids[5]))
    after = await stats_at(orders.gql, last["position"])

    assert after["totalOrders"] - before["totalOrders"] == 7
    old, new = _by_status(before), _by_status(after)
    expected = {"PENDING": 1, "PAID": 2, "SHIPPED": 2, "CANCELLED": 2}
    for status, count in expected.items():
        assert new[status][0] - old[status][0] == count, status
        assert new[status][1] - old[status][1] == Decimal("20.02") * count, status
    assert [s["status"] for s in after["byStatus"]] == ["PENDING", "PAID", "SHIPPED", "CANCELLED"]


async def test_projections_report_the_orders_projection_caught_up(orders: Orders) -> None:
    last = accepted(await orders.place(new_id()))

    async def caught_up() -> bool:
        data = await orders.gql.data(PROJECTIONS)
        status = {p["name"]: p for p in data["projections"]}.get("orders")
        return status is not None and int(status["position"] or 0) >= int(last["position"])

    await eventually(caught_up)
    data = await orders.gql.data(PROJECTIONS)
    (status,) = data["projections"]
    assert status["name"] == "orders"
    assert status["position"].isdigit()
    assert (status["state"], status["parked"], status["lastError"]) == ("running", 0, None)
    assert status["lag"] >= 0


# -- live subscriptions ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_order_updated_sends_the_current_view_then_each_change(
    server: LiveServer, staff_token: str, orders: Orders, protocol: Protocol
) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id))
    await read_order(orders.gql, order_id, min_version=1)
    async with graphql_ws(server.ws_url, staff_token, protocol) as ws:
        sub = await ws.subscribe(ORDER_UPDATED, {"id": order_id})
        current = await sub.event("orderUpdated")
        assert (current["version"], current["status"]) == (1, "PENDING")
        accepted(await orders.pay(order_id))
        accepted(await orders.ship(order_id, carrier="DHL"))
        paid, shipped = await sub.events("orderUpdated", 2)
        assert (paid["version"], paid["status"]) == (2, "PAID")
        assert (shipped["version"], shipped["status"], shipped["carrier"]) == (3, "SHIPPED", "DHL")
        await sub.assert_quiet()


async def test_orders_updated_is_filtered_by_customer_and_status(
    server: LiveServer, staff_token: str, orders: Orders
) -> None:
    customer = new_id("c")
    mine, other_status, other_customer = new_id(), new_id(), new_id()
    async with graphql_ws(server.ws_url, staff_token) as ws:
        paid_sub = await ws.subscribe(ORDERS_UPDATED, {"customerId": customer, "status": "PAID"})
        any_sub = await ws.subscribe(ORDERS_UPDATED, {"customerId": customer})
        await asyncio.sleep(0.2)  # the subscriptions are registered before the writes
        accepted(await orders.place(mine, customer_id=customer))
        accepted(await orders.place(other_status, customer_id=customer))
        accepted(await orders.place(other_customer, customer_id=new_id("c")))
        accepted(await orders.pay(other_customer))
        accepted(await orders.pay(mine))
        paid = await paid_sub.event("ordersUpdated")
        assert (paid["id"], paid["status"], paid["version"]) == (mine, "PAID", 2)
        await paid_sub.assert_quiet()
        seen = [(o["id"], o["version"]) for o in await any_sub.events("ordersUpdated", 3)]
        assert sorted(seen) == sorted([(mine, 1), (other_status, 1), (mine, 2)])
        await any_sub.assert_quiet()


async def test_an_order_leaving_a_status_filter_is_pushed_once_more(
    server: LiveServer, staff_token: str, orders: Orders
) -> None:
    customer = new_id("c")
    order_id, later = new_id(), new_id()
    async with graphql_ws(server.ws_url, staff_token) as ws:
        pending = await ws.subscribe(ORDERS_UPDATED, {"customerId": customer, "status": "PENDING"})
        await asyncio.sleep(0.2)  # the subscription is registered before the writes
        accepted(await orders.place(order_id, customer_id=customer))
        accepted(await orders.pay(order_id))
        accepted(await orders.ship(order_id))  # neither before nor after in the filter
        accepted(await orders.place(later, customer_id=customer))
        seen = [
            (o["id"], o["version"], o["status"]) for o in await pending.events("ordersUpdated", 3)
        ]
        assert seen == [(order_id, 1, "PENDING"), (order_id, 2, "PAID"), (later, 1, "PENDING")]
        await pending.assert_quiet()


async def test_dashboard_stats_subscription_sends_current_then_changes(
    server: LiveServer, staff_token: str, orders: Orders
) -> None:
    await stats_at(orders.gql, await orders.marker())
    async with graphql_ws(server.ws_url, staff_token) as ws:
        sub = await ws.subscribe(STATS_UPDATED)
        first = await sub.event("dashboardStats")
        placed = accepted(await orders.place(new_id()))
        while True:
            pushed = await sub.event("dashboardStats")
            if int(pushed["position"]) >= int(placed["position"]):
                break
        assert pushed["totalOrders"] == first["totalOrders"] + 1


# -- GraphQL over HTTP media types ----------------------------------------------------------------

GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE};q=0.5", "application/json"),
        ("application/json", "application/json"),
    ],
)
@pytest.mark.parametrize("authenticated", [True, False])
async def test_the_response_content_type_follows_accept(
    gql: GraphQLClient, accept: str, expected: str, authenticated: bool
) -> None:
    token = gql.token if authenticated else None
    response = await gql.post(STATS, token=token, headers={"Accept": accept})
    assert response.status_code == (200 if authenticated else 401)
    assert response.headers["content-type"] == expected
    assert ("data" in response.json()) is authenticated
