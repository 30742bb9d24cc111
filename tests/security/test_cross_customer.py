"""One customer's token must never yield another customer's order: not through a read that waits
or races a placement, not through a replayed idempotency key, not through the staff's notes in
the history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.gql import (
    ORDER_EVENTS,
    PLACE,
    GraphQLClient,
    Orders,
    accepted,
    error_codes,
    item,
    new_id,
)
from tests.e2e.ws import Protocol, graphql_ws
from tests.support.live_server import LiveServer, running_server

ORDER_WAIT = """
query Order($id: ID!, $minVersion: Int) {
  order(id: $id, minVersion: $minVersion) {
    id customerId total items { productId name }
    history { type data metadata }
  }
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for this module's attacks."""
    with running_server(tmp_path_factory.mktemp("cross-customer")) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the test."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0, trust_env=False) as client:
        yield client


def _client(http: httpx.AsyncClient, server: LiveServer, sub: str, role: str) -> GraphQLClient:
    return GraphQLClient(http, server.token(sub=sub, role=role))


async def test_a_wait_on_a_missing_id_does_not_return_the_order_another_customer_places(
    http: httpx.AsyncClient, server: LiveServer
) -> None:
    """Refused with FORBIDDEN: the same answer A gets when it asks a moment later."""
    customer_a = _client(http, server, new_id("cust-a"), "customer")
    sub_b = new_id("cust-b")
    customer_b = Orders(_client(http, server, sub_b, "customer"))
    order_id = new_id("race")

    waiting = asyncio.create_task(customer_a.execute(ORDER_WAIT, {"id": order_id, "minVersion": 1}))
    await asyncio.sleep(0.3)  # A's read now waits (up to about 2 s) for version 1
    accepted(await customer_b.place(order_id, customer_id=sub_b, items=[item("secret-sku")]))
    answer = await waiting

    assert error_codes(answer) == ["FORBIDDEN"], answer
    assert (answer.get("data") or {}).get("order") is None, answer
    assert "secret-sku" not in str(answer)
    # And the owner does get it, so the refusal is about who asks.
    mine = await customer_b.gql.data(ORDER_WAIT, {"id": order_id, "minVersion": 1})
    assert mine["order"]["customerId"] == sub_b


LIVE_FEEDS = {
    "orderUpdated": "subscription($id: ID!) { orderUpdated(id: $id) { id customerId } }",
    "orderEvents": "subscription($id: ID!) { orderEvents(id: $id) { type data } }",
}


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize("feed", sorted(LIVE_FEEDS))
async def test_a_customer_cannot_watch_an_id_before_anyone_places_it(
    http: httpx.AsyncClient, server: LiveServer, feed: str, protocol: Protocol
) -> None:
    """A live feed on a missing id would deliver whoever places it later: refused up front."""
    order_id = new_id("lurk")
    token = server.token(sub=new_id("cust-a"))
    async with graphql_ws(server.ws_url, token, protocol) as socket:
        watch = await socket.subscribe(LIVE_FEEDS[feed], {"id": order_id})
        first = await watch.message()
        assert _error_codes(first.payload) == ["FORBIDDEN"], first
        sub_b = new_id("cust-b")
        owner = Orders(_client(http, server, sub_b, "customer"))
        accepted(await owner.place(order_id, customer_id=sub_b, items=[item("secret-sku")]))
        await asyncio.sleep(0.5)
        while not watch.queue.empty():
            assert "secret-sku" not in str(watch.queue.get_nowait())


def _error_codes(payload: Any) -> list[str | None]:
    """The codes of a refused operation's errors: graphql-transport-ws sends a list in `error`,
    graphql-ws one error, or either a result with `errors`."""
    if isinstance(payload, dict) and "errors" in payload:
        payload = payload["errors"]
    errors = payload if isinstance(payload, list) else [payload]
    return [(error.get("extensions") or {}).get("code") for error in errors]


async def test_an_order_placed_before_the_read_is_refused_without_min_version(
    http: httpx.AsyncClient, server: LiveServer
) -> None:
    sub_b = new_id("cust-b")
    order_id = new_id("theirs")
    owner = Orders(_client(http, server, sub_b, "customer"))
    accepted(await owner.place(order_id, customer_id=sub_b))
    other = _client(http, server, new_id("cust-a"), "customer")
    for query, variables in (
        (ORDER_WAIT, {"id": order_id}),
        (ORDER_WAIT, {"id": order_id, "minVersion": 1}),
        (ORDER_EVENTS, {"id": order_id}),
    ):
        assert error_codes(await other.execute(query, variables)) == ["FORBIDDEN"]


async def test_a_replayed_idempotency_key_of_another_customer_is_refused(
    http: httpx.AsyncClient, server: LiveServer
) -> None:
    sub_b, sub_a = new_id("cust-b"), new_id("cust-a")
    order_id, key = new_id("idem"), new_id("key")
    owner = Orders(_client(http, server, sub_b, "customer"))
    original = accepted(
        await owner.place(order_id, customer_id=sub_b, items=[item()], key=key), version=1
    )
    # B's own retry replays B's result.
    assert await owner.place(order_id, customer_id=sub_b, items=[item()], key=key) == original

    attacker = _client(http, server, sub_a, "customer")
    answer = await attacker.execute(
        PLACE,
        {"input": {"orderId": order_id, "customerId": sub_a, "items": [item()]}, "key": key},
    )
    # The answer anyone gets for a taken id; not B's CommandAccepted.
    assert answer["data"]["placeOrder"]["__typename"] == "OrderAlreadyExists", answer
    assert original["eventIds"][0] not in str(answer)
    events = await Orders(_client(http, server, "staff-1", "staff")).order_events(order_id)
    assert len(events) == 1  # nothing written


async def test_staff_replaying_a_key_for_another_customer_gets_already_exists(
    http: httpx.AsyncClient, server: LiveServer
) -> None:
    sub_b = new_id("cust-b")
    order_id, key = new_id("idem"), new_id("key")
    accepted(
        await Orders(_client(http, server, sub_b, "customer")).place(
            order_id, customer_id=sub_b, key=key
        )
    )
    staff = Orders(_client(http, server, "staff-1", "staff"))
    result = await staff.place(order_id, customer_id=new_id("cust-c"), key=key)
    assert result["__typename"] == "OrderAlreadyExists", result


async def test_a_customer_sees_neither_staff_names_nor_staff_reasons(
    http: httpx.AsyncClient, server: LiveServer
) -> None:
    sub = new_id("cust")
    order_id = new_id("notes")
    customer = Orders(_client(http, server, sub, "customer"))
    accepted(await customer.place(order_id, customer_id=sub))
    staff = Orders(_client(http, server, "alice.from.support", "staff"))
    accepted(await staff.cancel(order_id, reason="fraud score 0.93, card flagged by Bob"))

    mine = await customer.gql.data(ORDER_WAIT, {"id": order_id, "minVersion": 2})
    history = mine["order"]["history"]
    assert [e["type"] for e in history] == ["OrderPlaced", "OrderCancelled"]
    placed, cancelled = history
    assert placed["metadata"]["actor"] == sub  # its own acts keep its name
    assert cancelled["metadata"]["actor"] == "staff"
    assert cancelled["data"]["reason"] == "Cancelled by the shop."
    assert "alice" not in str(mine)
    assert "fraud" not in str(mine)
    # Correlation ids stay: they let a customer quote a request to support.
    assert cancelled["metadata"]["$correlationId"]
    events = await customer.order_events(order_id)
    assert events[1]["metadata"]["actor"] == "staff"
    assert "fraud" not in str(events)

    # Staff see what was stored.
    staff_view = await staff.order_events(order_id)
    assert staff_view[1]["metadata"]["actor"] == "alice.from.support"
    assert staff_view[1]["data"]["reason"].startswith("fraud score")


async def test_a_customers_own_cancellation_reason_stays(
    http: httpx.AsyncClient, server: LiveServer
) -> None:
    sub = new_id("cust")
    order_id = new_id("own")
    customer = Orders(_client(http, server, sub, "customer"))
    accepted(await customer.place(order_id, customer_id=sub))
    accepted(await customer.cancel(order_id, reason="found it cheaper"))
    events = await customer.order_events(order_id)
    assert events[1]["data"]["reason"] == "found it cheaper"
    assert events[1]["metadata"]["actor"] == sub
