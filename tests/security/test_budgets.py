"""Each identity's budgets, one by one, against the real server with small settings: requests in
flight over HTTP (429), commands per second (priced whole, nothing written past the budget, on
HTTP and both websocket protocols), and operations per socket and per identity (an error for
that operation; the socket stays open; places come back when operations end)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.gql import GraphQLClient, error_codes
from tests.e2e.ws import Subscription, graphql_ws
from tests.support.live_server import LiveServer, running_server

REQUESTS = 2
PER_SOCKET = 3
PER_IDENTITY = 5
BURST = 3

WAITING = "query W($id: ID!) { order(id: $id, minVersion: 1) { id } }"
"""Waits about 2 s for an order that never comes: a request held in flight."""
MINE = "subscription($c: ID) { ordersUpdated(customerId: $c) { id } }"
PAGE = """query($c: ID) { orders(customerId: $c, first: 100) { edges { cursor } } }"""


def places(customer: str, count: int) -> str:
    fields = " ".join(
        f'p{n}: placeOrder(input: {{customerId: "{customer}", '
        f'items: [{{productId: "p", name: "n", price: "1.00", qty: 1}}]}}) {{ __typename }}'
        for n in range(count)
    )
    return f"mutation {{ {fields} }}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {
        "MAX_REQUESTS_PER_IDENTITY": str(REQUESTS),
        "MAX_SUBSCRIPTIONS_PER_SOCKET": str(PER_SOCKET),
        "MAX_SUBSCRIPTIONS_PER_IDENTITY": str(PER_IDENTITY),
        "COMMANDS_PER_SECOND": "1",
        "COMMAND_BURST": str(BURST),
    }
    with running_server(tmp_path_factory.mktemp("budgets"), env) as live:
        yield live


def _rate_limited(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert error_codes(body) == ["RATE_LIMITED"], body
    extensions: dict[str, Any] = body["errors"][0]["extensions"]
    assert extensions["retryAfter"] >= 1
    return extensions


async def test_requests_in_flight_past_the_budget_get_429(server: LiveServer) -> None:
    limits = httpx.Limits(max_connections=10)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, trust_env=False) as http:
        busy = GraphQLClient(http, server.token(sub="busy"))
        held = [
            asyncio.create_task(busy.post(WAITING, {"id": f"never-{n}"})) for n in range(REQUESTS)
        ]
        await asyncio.sleep(0.5)
        assert not any(task.done() for task in held), "the held requests must still be waiting"
        extensions = _rate_limited(await busy.post("{ __typename }"))
        assert extensions["budget"] == "requests in flight"
        other = GraphQLClient(http, server.token(sub="someone-else"))
        assert (await other.post("{ __typename }")).status_code == 200
        staff = GraphQLClient(http, server.token(sub="ops", role="staff"))
        staff_answers = await asyncio.gather(
            *(staff.post(WAITING, {"id": f"staff-{n}"}) for n in range(REQUESTS + 2))
        )
        assert [r.status_code for r in staff_answers] == [200] * (REQUESTS + 2)
        for response in await asyncio.gather(*held):
            assert response.status_code == 200
        assert (await busy.post("{ __typename }")).status_code == 200  # its places are back


async def _orders_of(http: httpx.AsyncClient, server: LiveServer, customer: str) -> int:
    staff = GraphQLClient(http, server.token(sub="ops", role="staff"))
    return len((await staff.data(PAGE, {"c": customer}))["orders"]["edges"])


async def test_commands_are_priced_whole_and_refused_whole(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
        buyer = GraphQLClient(http, server.token(sub="buyer"))
        first = await buyer.post(places("buyer", BURST))
        assert first.status_code == 200
        assert not first.json().get("errors")
        extensions = _rate_limited(await buyer.post(places("buyer", 2)))
        assert extensions["budget"] == "commands"
        other = GraphQLClient(http, server.token(sub="another-buyer"))
        assert not (await other.post(places("another-buyer", 1))).json().get("errors")
        async with graphql_ws(server.ws_url, server.token(sub="buyer")) as ws:
            refused = await (await ws.subscribe(places("buyer", 1))).message()
            assert refused.kind == "error"
            assert refused.payload[0]["extensions"]["code"] == "RATE_LIMITED"
        async with graphql_ws(server.ws_url, server.token(sub="buyer"), "graphql-ws") as ws:
            refused = await (await ws.subscribe(places("buyer", 1))).message()
            assert refused.kind == "error"
            assert refused.payload["extensions"]["code"] == "RATE_LIMITED"
        assert await _orders_of(http, server, "buyer") == BURST  # nothing more written
        await asyncio.sleep(extensions["retryAfter"] + 1.0)
        again = await buyer.post(places("buyer", 1))
        assert again.status_code == 200
        assert not again.json().get("errors")


async def _refused(subscription: Subscription) -> bool:
    with contextlib.suppress(AssertionError):
        message = await subscription.message(within=0.5)
        if message.kind != "error":
            return False
        payload = message.payload
        error = payload[0] if isinstance(payload, list) else payload
        assert error["extensions"]["code"] == "RATE_LIMITED", payload
        assert error["extensions"]["retryAfter"] >= 1
        return True
    return False


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_operations_are_budgeted_per_socket_and_per_identity(
    server: LiveServer, protocol: Any
) -> None:
    customer = f"watcher-{protocol}"
    token = server.token(sub=customer)
    variables = {"c": customer}
    async with graphql_ws(server.ws_url, token, protocol) as first:
        subscriptions = [await first.subscribe(MINE, variables) for _ in range(PER_SOCKET)]
        assert [await _refused(s) for s in subscriptions] == [False] * PER_SOCKET
        assert await _refused(await first.subscribe(MINE, variables))  # past the socket's
        await first.stop(subscriptions[0].id)
        await asyncio.sleep(0.3)
        assert not await _refused(await first.subscribe(MINE, variables))  # its place is back
        async with graphql_ws(server.ws_url, token, protocol) as second:
            more = [await second.subscribe(MINE, variables) for _ in range(2)]
            assert [await _refused(s) for s in more] == [False, False]
            assert await _refused(await second.subscribe(MINE, variables))  # past the identity's
            await first.close()
            await asyncio.sleep(0.3)
            started = time.monotonic()
            assert not await _refused(await second.subscribe(MINE, variables))
            assert time.monotonic() - started < 5
