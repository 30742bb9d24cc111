"""The response limit holds on websockets as on HTTP: on both GraphQL websocket protocols, a
query's answer or a subscription's result over MAX_RESPONSE_BYTES comes back as an error for that
operation (QUERY_TOO_COMPLEX, HTTP's message), never as one huge message; the socket stays open
and serves what fits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.e2e.gql import GraphQLClient, Orders, accepted, item, new_id
from tests.e2e.ws import Protocol, graphql_ws
from tests.security.live import LogWatch
from tests.support.live_server import LiveServer, running_server

PROTOCOLS: list[Protocol] = ["graphql-transport-ws", "graphql-ws"]
LIMIT = 16_384
TOO_LARGE = f"The response would exceed {LIMIT} bytes: ask for smaller pages."
ORDER_QUERY = "query($id: ID!) { order(id: $id, minVersion: 1) { id items { productId name } } }"
ORDER_UPDATED = "subscription($id: ID!) { orderUpdated(id: $id) { id items { productId name } } }"
SMALL_QUERY = "query($id: ID!) { order(id: $id, minVersion: 1) { id version } }"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose answers may be 16 KiB at most."""
    with running_server(
        tmp_path_factory.mktemp("ws-response-cap"), {"MAX_RESPONSE_BYTES": str(LIMIT)}
    ) as live:
        yield live


@pytest.fixture
async def staff_orders(server: LiveServer) -> AsyncIterator[Orders]:
    """The contract's mutations, as staff."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0, trust_env=False) as http:
        yield Orders(GraphQLClient(http, server.token(sub="staff-cap", role="staff")))


async def _large_order(orders: Orders) -> str:
    """An order whose view is about 21 KB: 100 items with 200-character names."""
    order_id = new_id("big")
    items = [item(f"p-{i}", "1.00", name=f"{i:03d}" + "n" * 197) for i in range(100)]
    accepted(await orders.place(order_id, items=items))
    return order_id


def _assert_too_large(payload: object) -> None:
    errors = payload if isinstance(payload, list) else [payload]
    assert errors == [{"message": TOO_LARGE, "extensions": {"code": "QUERY_TOO_COMPLEX"}}]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_query_answer_over_the_limit_is_an_error_for_that_operation(
    server: LiveServer, staff_orders: Orders, protocol: Protocol
) -> None:
    order_id = await _large_order(staff_orders)
    log = LogWatch(server)
    token = server.token(sub="staff-cap", role="staff")
    async with graphql_ws(server.ws_url, token, protocol) as ws:
        big = await ws.subscribe(ORDER_QUERY, {"id": order_id})
        refused = await big.message()
        assert refused.kind == "error", refused
        _assert_too_large(refused.payload)
        await big.assert_quiet(0.5)  # the error ends the operation: no data, no complete
        small = await ws.subscribe(SMALL_QUERY, {"id": order_id})
        assert (await small.event("order")) == {"id": order_id, "version": 1}
    lines = [line for line in log.text().splitlines() if "event=response_refused" in line]
    assert len(lines) == 1, log.text()
    assert "transport=websocket" in lines[0]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_subscription_result_over_the_limit_ends_it_with_an_error(
    server: LiveServer, staff_orders: Orders, protocol: Protocol
) -> None:
    order_id = await _large_order(staff_orders)
    token = server.token(sub="staff-cap", role="staff")
    async with graphql_ws(server.ws_url, token, protocol) as ws:
        live = await ws.subscribe(ORDER_UPDATED, {"id": order_id})
        refused = await live.message()
        assert refused.kind == "error", refused
        _assert_too_large(refused.payload)
        await live.assert_quiet(0.5)
        small = await ws.subscribe(
            "subscription($id: ID!) { orderUpdated(id: $id) { id version } }", {"id": order_id}
        )
        assert (await small.event("orderUpdated")) == {"id": order_id, "version": 1}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_shared_subscription_result_over_the_limit_ends_it_with_an_error(
    server: LiveServer, staff_orders: Orders, protocol: Protocol
) -> None:
    customer = new_id("cust")
    token = server.token(sub="staff-cap", role="staff")
    query = """subscription($c: ID) {
      ordersUpdated(customerId: $c) { id items { productId name } }
    }"""
    async with graphql_ws(server.ws_url, token, protocol) as ws:
        live = await ws.subscribe(query, {"c": customer})
        await live.assert_quiet(0.5)  # subscribed; nothing changed yet
        items = [item(f"p-{i}", "1.00", name=f"{i:03d}" + "n" * 197) for i in range(100)]
        accepted(await staff_orders.place(new_id("big"), customer_id=customer, items=items))
        refused = await live.message()
        assert refused.kind == "error", refused
        _assert_too_large(refused.payload)
