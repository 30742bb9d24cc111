"""Websockets authenticate once, so the token's expiry and the handshake's deadline must be
enforced on the open connection, on both GraphQL websocket protocols."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.e2e.gql import GraphQLClient, Orders, accepted, new_id
from tests.e2e.ws import GraphQLWebSocket, Protocol, graphql_ws
from tests.support.live_server import LiveServer, running_server

PROTOCOLS: list[Protocol] = ["graphql-transport-ws", "graphql-ws"]
INIT_TIMEOUT = 1.0
ORDER_UPDATED = "subscription($id: ID!) { orderUpdated(id: $id) { id version } }"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server that gives websockets one second to send connection_init."""
    root = tmp_path_factory.mktemp("websocket-auth")
    with running_server(root, {"WS_INIT_TIMEOUT": str(INIT_TIMEOUT)}) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the test."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0, trust_env=False) as client:
        yield client


async def _own_order(http: httpx.AsyncClient, server: LiveServer, sub: str) -> str:
    order_id = new_id("ws")
    owner = Orders(GraphQLClient(http, server.token(sub=sub)))
    accepted(await owner.place(order_id, customer_id=sub))
    return order_id


async def _closed_code(socket: GraphQLWebSocket, within: float) -> int | None:
    async with asyncio.timeout(within):
        await socket.ws.wait_closed()
    return socket.ws.close_code


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_open_socket_is_closed_with_4403_when_its_token_expires(
    http: httpx.AsyncClient, server: LiveServer, protocol: Protocol
) -> None:
    sub = new_id("cust")
    order_id = await _own_order(http, server, sub)
    expires_at = int(time.time() + 2)
    async with graphql_ws(server.ws_url, server.token(sub=sub, ttl=2), protocol) as socket:
        live = await socket.subscribe(ORDER_UPDATED, {"id": order_id})
        assert (await live.event("orderUpdated"))["id"] == order_id
        closed = await live.message(within=10)
        assert closed.kind == "closed", closed
        assert closed.payload == 4403
        assert time.time() >= expires_at - 0.5  # not before the token's exp


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_no_operation_runs_on_an_expired_token(
    http: httpx.AsyncClient, server: LiveServer, protocol: Protocol
) -> None:
    sub = new_id("cust")
    order_id = await _own_order(http, server, sub)
    async with graphql_ws(server.ws_url, server.token(sub=sub, ttl=1), protocol) as socket:
        await asyncio.sleep(1.5)  # the token has expired (exp is whole seconds)
        try:
            late = await socket.subscribe(ORDER_UPDATED, {"id": order_id})
        except ConnectionClosed:
            pass  # closed at the expiry already
        else:
            message = await late.message(within=10)
            assert message.kind == "closed", f"ran on an expired token: {message}"
        assert await _closed_code(socket, within=5) == 4403


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_socket_that_never_sends_connection_init_is_closed(
    server: LiveServer, protocol: Protocol
) -> None:
    started = time.monotonic()
    async with connect(
        server.ws_url, subprotocols=[Subprotocol(protocol)], proxy=None, open_timeout=10
    ) as ws:
        received: list[str | bytes] = []
        async with asyncio.timeout(INIT_TIMEOUT + 5):
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    received.append(message)
        assert ws.close_code == 4408, (ws.close_code, received)
    assert time.monotonic() - started >= INIT_TIMEOUT - 0.2
    assert not any("connection_ack" in str(message) for message in received)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_prompt_connection_init_keeps_the_socket(
    http: httpx.AsyncClient, server: LiveServer, protocol: Protocol
) -> None:
    sub = new_id("cust")
    order_id = await _own_order(http, server, sub)
    async with graphql_ws(server.ws_url, server.token(sub=sub), protocol) as socket:
        await asyncio.sleep(INIT_TIMEOUT + 0.5)
        answer = await socket.subscribe(ORDER_UPDATED, {"id": order_id})
        assert (await answer.event("orderUpdated"))["id"] == order_id
