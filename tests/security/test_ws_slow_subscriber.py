"""A subscriber that stops reading, among subscribers of one shared live query: the others get
every change, in order, as it happens; the stalled one is held to its socket's buffers and then
MEMBER_QUEUE results, after which its subscription completes. What it does get is every change
up to that point, in order, none lost or reordered between the frames written straight to its
socket and those its task sends once the socket stopped taking them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from api.graphql.shared_subscriptions import MEMBER_QUEUE
from tests.e2e.gql import JSON, GraphQLClient, new_id
from tests.e2e.ws import graphql_ws
from tests.support.live_server import LiveServer, running_server

ALIASES = 30
WATCH = (
    "subscription($c: ID) { ordersUpdated(customerId: $c) { id "
    + " ".join(f"a{n}: items {{ name }}" for n in range(ALIASES))
    + " } }"
)
"""Every item name thirty times over: a large order's push is about 600 KB, so a few of them
fill what the kernel buffers for the stalled socket (up to 4 MB) and its transport's own."""
LARGE_ORDERS = 12
SMALL_ORDERS = MEMBER_QUEUE + 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The service on its defaults."""
    with running_server(tmp_path_factory.mktemp("slow-subscriber")) as live:
        yield live


def _placements(count: int) -> str:
    variables = ", ".join(f"$o{n}: PlaceOrderInput!" for n in range(count))
    fields = " ".join(f"o{n}: placeOrder(input: $o{n}) {{ __typename }}" for n in range(count))
    return f"mutation Place({variables}) {{ {fields} }}"


async def _place(
    gql: GraphQLClient, customer: str, order_ids: list[str], items: list[JSON], per_request: int
) -> None:
    for start in range(0, len(order_ids), per_request):
        batch = order_ids[start : start + per_request]
        variables: JSON = {
            f"o{n}": {"orderId": order_id, "customerId": customer, "items": items}
            for n, order_id in enumerate(batch)
        }
        data = await gql.data(_placements(len(batch)), variables)
        assert [r["__typename"] for r in data.values()] == ["CommandAccepted"] * len(batch)


async def _place_large_then_small(gql: GraphQLClient, customer: str, order_ids: list[str]) -> None:
    large: list[JSON] = [
        {"productId": f"p-{n}", "name": f"{n:03d}" + "x" * 197, "price": "1.00", "qty": 1}
        for n in range(100)
    ]
    small: list[JSON] = [{"productId": "p-1", "name": "small", "price": "1.00", "qty": 1}]
    await _place(gql, customer, order_ids[:LARGE_ORDERS], large, per_request=8)
    await _place(gql, customer, order_ids[LARGE_ORDERS:], small, per_request=30)


def _small_receive_buffer(server: LiveServer) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = server.url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    return sock


async def test_a_stalled_subscriber_is_completed_after_falling_behind_and_holds_no_one_back(
    server: LiveServer,
) -> None:
    customer = new_id("c")
    order_ids = [new_id() for _ in range(LARGE_ORDERS + SMALL_ORDERS)]
    token = server.token(sub="staff-slow", role="staff")
    stalled = await connect(
        server.ws_url,
        sock=_small_receive_buffer(server),
        subprotocols=[Subprotocol("graphql-transport-ws")],
        max_queue=1,  # the library stops reading the socket while a message waits for recv()
        ping_interval=None,
        proxy=None,
    )
    http = httpx.AsyncClient(base_url=server.url, timeout=60.0, trust_env=False)
    async with http, stalled, graphql_ws(server.ws_url, token) as reading:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await stalled.send(orjson.dumps(init).decode())
        assert orjson.loads(await stalled.recv())["type"] == "connection_ack"
        payload = {"query": WATCH, "variables": {"c": customer}}
        await stalled.send(
            orjson.dumps({"type": "subscribe", "id": "1", "payload": payload}).decode()
        )
        live = await reading.subscribe(WATCH, {"c": customer})
        await live.assert_quiet()  # both subscribed before the first order

        await _place_large_then_small(GraphQLClient(http, token), customer, order_ids)

        got = [(await live.event("ordersUpdated", within=30.0))["id"] for _ in order_ids]
        assert got == order_ids  # the reader was not held back by the stalled one
        stalled_got: list[str] = []
        while True:
            async with asyncio.timeout(30.0):
                message = orjson.loads(await stalled.recv())
            if message["type"] != "next":
                break
            stalled_got.append(message["payload"]["data"]["ordersUpdated"]["id"])
        assert message == {"id": "1", "type": "complete"}
        assert MEMBER_QUEUE <= len(stalled_got) < len(order_ids)
        assert stalled_got == order_ids[: len(stalled_got)]  # a prefix: nothing lost or reordered
