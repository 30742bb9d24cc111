"""Bad input never reaches the log: typed `ValidationFailed` or standard GraphQL errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.gql import (
    JSON,
    MUTATIONS,
    PLACE,
    GraphQLClient,
    Orders,
    accepted,
    item,
    new_id,
    no_data,
    refused,
)


async def assert_nothing_written(orders: Orders, marker: str) -> None:
    """No event was appended to the global log after `marker`."""
    assert await orders.events_after(marker) == [], "bad input reached the event log"


def place_input(**overrides: Any) -> JSON:
    """A valid PlaceOrderInput with some fields replaced."""
    payload: JSON = {"orderId": new_id(), "customerId": "c-1", "items": [item()]}
    payload.update(overrides)
    return payload


BAD_IDS = ["", "-starts-with-dash", "has space", "slash/in/it", "x" * 65, "ünïcode", "a\n"]


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_bad_order_ids_are_refused(orders: Orders, bad_id: str) -> None:
    marker = await orders.marker()
    placed = await orders.gql.data(PLACE, {"input": place_input(orderId=bad_id)})
    refused(placed["placeOrder"], "ValidationFailed", code="VALIDATION_FAILED", field="orderId")
    refused(await orders.pay(bad_id), "ValidationFailed", field="orderId")
    refused(await orders.cancel(bad_id), "ValidationFailed", field="orderId")
    await assert_nothing_written(orders, marker)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"customerId": "bad id"}, "customerId"),
        ({"items": []}, "items"),
        ({"items": [item(price="-1.00")]}, "items[0].price"),
        ({"items": [item(price="1.234")]}, "items[0].price"),
        ({"items": [item(), item("p-2", qty=0)]}, "items[1].qty"),
        ({"items": [item(qty=10_001)]}, "items[0].qty"),
        ({"items": [item(product_id="bad/id")]}, "items[0].productId"),
        ({"items": [item(name="  ")]}, "items[0].name"),
        ({"items": [item(f"p-{n}") for n in range(101)]}, "items"),
        ({"items": [item("p-1"), item("p-1")]}, "items[1].productId"),
    ],
)
async def test_malformed_orders_give_validation_failed(
    orders: Orders, overrides: JSON, field: str
) -> None:
    marker = await orders.marker()
    payload = place_input(**overrides)
    data = await orders.gql.data(PLACE, {"input": payload})
    result = refused(data["placeOrder"], "ValidationFailed", code="VALIDATION_FAILED", field=field)
    assert result["message"]
    await assert_nothing_written(orders, marker)


async def test_hundred_items_is_the_limit(orders: Orders) -> None:
    order_id = new_id()
    items = [item(f"p-{n}", "1.00") for n in range(100)]
    accepted(await orders.place(order_id, items=items), 1)
    refused(
        await orders.add_item(order_id, item("p-100")),
        "InvalidTransition",
        status="PENDING",
    )
    assert len(await orders.order_events(order_id)) == 1


async def test_bad_amendments_give_validation_failed(orders: Orders) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id))
    marker = (await orders.order_events(order_id))[-1]["position"]
    refused(await orders.add_item(order_id, item("p-2", "0.001")), "ValidationFailed")
    refused(await orders.add_item(order_id, item("p-2", qty=-3)), "ValidationFailed")
    refused(await orders.remove_item(order_id, "bad id"), "ValidationFailed")
    refused(await orders.pay(order_id, amount="-10.00"), "ValidationFailed")
    refused(await orders.ship(order_id, carrier=""), "ValidationFailed")
    await assert_nothing_written(orders, marker)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        # wrong GraphQL types
        (PLACE, {"input": place_input(items=[{**item(), "qty": "three"}])}),
        (PLACE, {"input": place_input(items=[{**item(), "qty": 1.5}])}),
        (PLACE, {"input": place_input(items=[{**item(), "price": "abc"}])}),
        (PLACE, {"input": place_input(items=[{**item(), "price": 10.5}])}),
        (PLACE, {"input": place_input(customerId=None)}),
        (PLACE, {"input": place_input(items="p-1")}),
        # unknown and missing fields
        (PLACE, {"input": place_input(discount="100%")}),
        (PLACE, {"input": {"orderId": new_id(), "items": [item()]}}),
        (MUTATIONS["takePayment"], {"input": {"orderId": "o-1", "amount": "1.00"}}),
        ("mutation { placeOrder(input: {customerId: true, items: []}) { __typename } }", None),
        ('mutation { placeOrder(input: {customerId: "c", items: []}) { nope } }', None),
        ("mutation { placeOrder(input: ", None),
        ("mutation { doSomethingElse }", None),
    ],
)
async def test_wrong_graphql_input_gives_graphql_errors(
    orders: Orders, query: str, variables: JSON | None
) -> None:
    marker = await orders.marker()
    result = await orders.gql.execute(query, variables)
    assert result.get("errors"), f"expected GraphQL errors, got {result}"
    assert no_data(result), result
    for error in result["errors"]:
        assert error["message"]
        assert (error.get("extensions") or {}).get("code") != "INTERNAL_SERVER_ERROR", error
    await assert_nothing_written(orders, marker)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"query": 42}', b'{"variables": {}}', b""],
)
async def test_malformed_http_bodies_are_client_errors(
    http: httpx.AsyncClient, staff_token: str, orders: Orders, body: bytes
) -> None:
    marker = await orders.marker()
    response = await http.post(
        "/graphql",
        content=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {staff_token}"},
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    await assert_nothing_written(orders, marker)


async def test_oversized_query_is_refused(gql: GraphQLClient, orders: Orders) -> None:
    marker = await orders.marker()
    deep = "{ __typename " + "".join(f"a{n}: __typename " for n in range(5000)) + "}"
    result = await gql.execute(deep)
    assert result.get("errors"), "a 5,000-alias query should hit a limiter"
    await assert_nothing_written(orders, marker)


@pytest.mark.parametrize(
    "query",
    [
        'query { orderEvents(id: "o-1", first: -1) { id } }',
        'query { orderEvents(id: "o-1", first: 100000000) { id } }',
        'query { orderEvents(id: "o-1", fromVersion: -5) { id } }',
        'query { orderEvents(id: "bad id") { id } }',
        'query { orderAt(id: "bad id") { id } }',
        'query { orderAt(id: "o-1", asOf: "2020-01-01T00:00:00") { id } }',
        'query { orderAt(id: "o-1", asOf: "yesterday") { id } }',
        'query { events(after: "abc") { edges { cursor } } }',
        'query { events(after: "-1") { edges { cursor } } }',
        "query { events(first: -3) { edges { cursor } } }",
        "query { events(first: 1000000) { edges { cursor } } }",
        'query { events(since: "not a time") { edges { cursor } } }',
    ],
)
async def test_bad_query_arguments_give_client_errors(gql: GraphQLClient, query: str) -> None:
    result = await gql.execute(query)
    assert result.get("errors"), f"expected GraphQL errors, got {result}"
    assert no_data(result), result
    for error in result["errors"]:
        assert (error.get("extensions") or {}).get("code") != "INTERNAL_SERVER_ERROR", error
