"""Websocket frames as the GraphQL websocket protocols define them: JSON text, never binary; and
queries and mutations over the legacy `graphql-ws` protocol."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.e2e.gql import JSON, Orders, accepted, item, new_id
from tests.support.live_server import LiveServer


async def _frame(ws: ClientConnection, within: float = 10.0) -> JSON:
    """The next non-keep-alive message, which must arrive as a text frame."""
    async with asyncio.timeout(within):
        while True:
            raw = await ws.recv()
            assert isinstance(raw, str), f"binary frame: {raw!r}"
            message: JSON = orjson.loads(raw)
            if message["type"] not in ("ka", "ping", "pong"):
                return message


async def _connect(ws: ClientConnection, token: str) -> None:
    await ws.send(
        orjson.dumps(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        ).decode()
    )
    assert (await _frame(ws))["type"] == "connection_ack"


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_every_message_is_a_text_frame(
    server: LiveServer, staff_token: str, orders: Orders, protocol: str
) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id, items=[item("p-1", "3.00")]))
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    async with connect(
        server.ws_url, subprotocols=[Subprotocol(protocol)], proxy=None, open_timeout=10
    ) as ws:
        await _connect(ws, staff_token)
        query = "subscription($id: ID!) { orderEvents(id: $id) { type version } }"
        payload = {"query": query, "variables": {"id": order_id}}
        await ws.send(orjson.dumps({"type": start, "id": "1", "payload": payload}).decode())
        message = await _frame(ws)
        assert message["type"] in ("next", "data")
        assert message["payload"]["data"]["orderEvents"] == {"type": "OrderPlaced", "version": 1}


async def _legacy_run(server: LiveServer, token: str, query: str, variables: JSON) -> list[JSON]:
    """Every message the legacy protocol answers one `start` with, up to its `complete`."""
    async with connect(
        server.ws_url, subprotocols=[Subprotocol("graphql-ws")], proxy=None, open_timeout=10
    ) as ws:
        await _connect(ws, token)
        payload = {"query": query, "variables": variables}
        await ws.send(orjson.dumps({"type": "start", "id": "q", "payload": payload}).decode())
        messages: list[JSON] = []
        while not messages or messages[-1]["type"] not in ("complete", "error"):
            messages.append(await _frame(ws))
        return messages


async def test_a_query_over_the_legacy_protocol_answers_once_and_completes(
    server: LiveServer, staff_token: str, orders: Orders
) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id, items=[item("p-1", "3.00")]))
    messages = await _legacy_run(
        server,
        staff_token,
        "query($id: ID!) { orderEvents(id: $id) { type } }",
        {"id": order_id},
    )
    placed = {"data": {"orderEvents": [{"type": "OrderPlaced"}]}}
    assert messages == [
        {"type": "data", "id": "q", "payload": placed},
        {"type": "complete", "id": "q"},
    ]


async def test_a_mutation_over_the_legacy_protocol_is_carried_out(
    server: LiveServer, staff_token: str, orders: Orders
) -> None:
    order_id = new_id()
    mutation = """mutation($input: PlaceOrderInput!) {
      placeOrder(input: $input) { __typename ... on CommandAccepted { orderId version } }
    }"""
    variables = {
        "input": {"orderId": order_id, "customerId": "c-1", "items": [item("p-1", "3.00")]}
    }
    data, complete = await _legacy_run(server, staff_token, mutation, variables)
    assert data["payload"] == {
        "data": {"placeOrder": {"__typename": "CommandAccepted", "orderId": order_id, "version": 1}}
    }
    assert complete == {"type": "complete", "id": "q"}
    assert [event["type"] for event in await orders.order_events(order_id)] == ["OrderPlaced"]


async def test_an_invalid_operation_over_the_legacy_protocol_is_one_clear_error(
    server: LiveServer, staff_token: str
) -> None:
    (error,) = await _legacy_run(server, staff_token, "query { nope }", {})
    assert error["type"] == "error"
    assert "nope" in error["payload"]["message"]
