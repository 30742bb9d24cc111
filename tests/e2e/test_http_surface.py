"""The server's surface: auth, GraphiQL, health, media types, and the exported schema."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    build_client_schema,
    build_schema,
    get_introspection_query,
    lexicographic_sort_schema,
    print_schema,
)

from tests.e2e.gql import (
    EVENTS,
    ORDER_AT,
    ORDER_EVENTS,
    GraphQLClient,
    Orders,
    accepted,
    error_codes,
    item,
    make_token,
    new_id,
    no_data,
)
from tests.e2e.test_subscriptions import ORDER_EVENTS_SUB
from tests.e2e.ws import Protocol, WsMessage, WsRejected, graphql_ws
from tests.support.live_server import LiveServer
from tests.support.processes import REPO_ROOT


async def test_healthz(
    http: httpx.AsyncClient, staff_token: str, token_for: Callable[..., str]
) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}  # liveness only: no head position, no parts
    customer = token_for(sub="c-health", role="customer")
    response = await http.get("/healthz", headers={"Authorization": f"Bearer {customer}"})
    assert response.json() == {"status": "ok"}
    response = await http.get("/healthz", headers={"Authorization": f"Bearer {staff_token}"})
    details = response.json()
    assert details["status"] == "ok"
    assert {details[part] for part in ("store", "writes", "redis", "views")} == {"ok"}
    assert int(details["headPosition"]) >= 0


async def test_graphiql_is_served_to_browsers(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_graphql_response_media_type_is_accepted(gql: GraphQLClient, orders: Orders) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id))
    response = await gql.post(
        ORDER_EVENTS,
        {"id": order_id},
        headers={"Accept": "application/graphql-response+json"},
    )
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith(
        ("application/graphql-response+json", "application/json")
    )
    assert [e["version"] for e in response.json()["data"]["orderEvents"]] == [1]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (ORDER_EVENTS, {"id": "o-anything"}),
        (ORDER_AT, {"id": "o-anything"}),
        (EVENTS, {}),
        ('mutation { cancelOrder(input: {orderId: "o-1", reason: "x"}) { __typename } }', {}),
    ],
)
async def test_without_a_valid_token_nothing_but_unauthenticated(
    gql: GraphQLClient, server: LiveServer, query: str, variables: dict[str, Any]
) -> None:
    expired = server.token(sub="staff-1", role="staff", ttl=-60)
    forged = make_token("not-the-secret-but-just-as-long-as-one", sub="staff-1", role="staff")
    for token in (None, expired, forged, "not-a-jwt"):
        result = await gql.execute(query, variables, token=token)
        assert error_codes(result) == ["UNAUTHENTICATED"], (token, result)
        assert no_data(result), result


async def test_place_order_without_token_writes_nothing(gql: GraphQLClient, orders: Orders) -> None:
    marker = await orders.marker()
    order_id = new_id()
    anonymous = Orders(gql.with_token(None))
    result = await anonymous.gql.execute(
        "mutation P($input: PlaceOrderInput!) { placeOrder(input: $input) { __typename } }",
        {"input": {"orderId": order_id, "customerId": "c-1", "items": [item()]}},
    )
    assert error_codes(result) == ["UNAUTHENTICATED"], result
    assert await orders.events_after(marker) == []


async def test_customer_access(gql: GraphQLClient, orders: Orders, server: LiveServer) -> None:
    alice_id, bob_id = new_id("alice"), new_id("bob")
    alice = Orders(gql.with_token(server.token(sub=alice_id, role="customer")))
    marker = await orders.marker()

    # Alice places and cancels her own orders and reads them.
    mine = new_id()
    accepted(await alice.place(mine, customer_id=alice_id), 1)
    assert [e["type"] for e in await alice.order_events(mine)] == ["OrderPlaced"]
    state = await alice.order_at(mine)
    assert state is not None
    assert state["customerId"] == alice_id
    accepted(await alice.cancel(mine), 2)

    # Everything else is staff's.
    bobs = new_id()
    accepted(await orders.place(bobs, customer_id=bob_id))
    denied = [
        await alice.gql.execute(
            "mutation P($input: PlaceOrderInput!) { placeOrder(input: $input) { __typename } }",
            {"input": {"orderId": new_id(), "customerId": bob_id, "items": [item()]}},
        ),
        await alice.gql.execute(ORDER_EVENTS, {"id": bobs}),
        await alice.gql.execute(ORDER_AT, {"id": bobs}),
        await alice.gql.execute(
            'mutation C($id: ID!) { cancelOrder(input: {orderId: $id, reason: "x"}) '
            "{ __typename } }",
            {"id": bobs},
        ),
        await alice.gql.execute(
            'mutation T($id: ID!) { takePayment(input: {orderId: $id, amount: "10.00", '
            'method: "card", transactionId: "t"}) { __typename } }',
            {"id": mine},
        ),
        await alice.gql.execute(
            'mutation S($id: ID!) { shipOrder(input: {orderId: $id, trackingId: "t", '
            'carrier: "c"}) { __typename } }',
            {"id": bobs},
        ),
    ]
    for result in denied:
        assert error_codes(result) == ["FORBIDDEN"], result
        assert no_data(result), result

    written = await orders.events_after(marker)
    assert [(e["streamId"], e["type"]) for e in written] == [
        (f"order-{mine}", "OrderPlaced"),
        (f"order-{mine}", "OrderCancelled"),
        (f"order-{bobs}", "OrderPlaced"),
    ]


async def _first_reply(
    server: LiveServer, token: str | None, order_id: str, protocol: Protocol
) -> WsMessage:
    """The first answer to an orderEvents subscription; kind "closed" if the connection was
    refused, with the close code or "connection_error" as payload."""
    try:
        async with graphql_ws(server.ws_url, token, protocol) as ws:
            sub = await ws.subscribe(ORDER_EVENTS_SUB, {"id": order_id})
            return await sub.message()
    except WsRejected as rejected:
        payload = "connection_error" if rejected.connection_error else rejected.code
        return WsMessage(kind="closed", payload=payload)


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_websocket_without_a_token_is_rejected(
    server: LiveServer, orders: Orders, protocol: Protocol
) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id))
    for token in (None, "not-a-jwt"):
        message = await _first_reply(server, token, order_id, protocol)
        if message.kind == "closed":
            assert message.payload is not None, "closed without a close frame"
            assert message.payload == "connection_error" or 4400 <= message.payload < 4500
        elif message.kind == "next":
            # Acknowledged anyway: then the operation itself must be refused, with no event.
            assert error_codes(message.payload) == ["UNAUTHENTICATED"], message
            assert no_data(message.payload), message
        else:
            assert message.kind == "error", message


async def test_customer_cannot_subscribe_to_another_customers_order(
    server: LiveServer, orders: Orders
) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id, customer_id="c-owner"))
    token = server.token(sub="c-other", role="customer")
    async with graphql_ws(server.ws_url, token) as ws:
        sub = await ws.subscribe(ORDER_EVENTS_SUB, {"id": order_id})
        message = await sub.message()
    if message.kind == "next":
        assert error_codes(message.payload) == ["FORBIDDEN"], message
        assert no_data(message.payload), message
    else:
        assert message.kind == "error", message
        assert "FORBIDDEN" in str(message.payload), message


@pytest.fixture
def exported_sdl() -> str:
    """schema.graphql at the repository root."""
    return Path(REPO_ROOT, "schema.graphql").read_text()


async def test_served_schema_equals_schema_graphql(gql: GraphQLClient, exported_sdl: str) -> None:
    introspection = await gql.data(get_introspection_query(descriptions=True))
    # Sorted on both sides: the file is exported in lexicographic order, introspection is not.
    served = print_schema(lexicographic_sort_schema(build_client_schema(introspection)))  # type: ignore[arg-type]
    exported = print_schema(lexicographic_sort_schema(build_schema(exported_sdl)))
    assert served == exported, "schema.graphql drifted from the served schema: re-export it"
