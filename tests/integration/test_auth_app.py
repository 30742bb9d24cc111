"""Auth and error masking through the real app on a real socket (uvicorn in-process)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import strawberry
import uvicorn
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from api.graphql.schema import build_schema
from api.http.auth import Authenticator
from api.settings.config import Settings
from api.wiring.app import create_app

TRANSPORT_WS = Subprotocol("graphql-transport-ws")
SECRET = "app-test-secret-" + "y" * 48
PLACE = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { __typename ... on CommandAccepted { orderId version } }
}
"""
PAYMENT = """
mutation {
  takePayment(input: {orderId: "o-7", amount: "3.00", method: "card", transactionId: "t"}) {
    __typename
  }
}
"""


@strawberry.type
class BrokenQuery:
    """A field that fails the way a bug or an outage would."""

    @strawberry.field(description="Always raises.")  # type: ignore[untyped-decorator]
    def broken(self) -> str:
        """Always raises."""
        raise RuntimeError("secret internals: password=hunter2")


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)
    app = create_app(settings, build_schema(extra_queries=(BrokenQuery,)))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{base_url}") as http:
        yield http


def bearer(sub: str, role: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + Authenticator(SECRET).issue(sub=sub, role=role)}


def order_input(order_id: str, customer_id: str) -> dict[str, object]:
    item = {"productId": "p1", "name": "Pen", "price": "1.50", "qty": 2}
    return {"orderId": order_id, "customerId": customer_id, "items": [item]}


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    async with asyncio.timeout(10):  # 503 until the projector's first catch-up marks views ready
        while response.status_code == 503:
            await asyncio.sleep(0.02)
            response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_graphiql_needs_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
async def test_operations_without_a_valid_token_are_unauthenticated(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
    assert response.status_code == 401
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    get = await client.get("/graphql", params={"query": "{ __typename }"}, headers=headers)
    assert get.status_code == 401


async def test_a_customer_places_for_itself_only(client: httpx.AsyncClient) -> None:
    own = await client.post(
        "/graphql",
        json={"query": PLACE, "variables": {"input": order_input("o-own", "c-1")}},
        headers=bearer("c-1", "customer"),
    )
    assert own.json()["data"]["placeOrder"] == {
        "__typename": "CommandAccepted",
        "orderId": "o-own",
        "version": 1,
    }
    other = await client.post(
        "/graphql",
        json={"query": PLACE, "variables": {"input": order_input("o-other", "c-2")}},
        headers=bearer("c-1", "customer"),
    )
    (error,) = other.json()["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"


async def test_a_customer_reads_its_own_orders_only(client: httpx.AsyncClient) -> None:
    await client.post(
        "/graphql",
        json={"query": PLACE, "variables": {"input": order_input("o-7", "c-7")}},
        headers=bearer("staff-1", "staff"),
    )
    query = '{ orderEvents(id: "o-7") { type } orderAt(id: "o-7") { customerId } }'
    own = await client.post("/graphql", json={"query": query}, headers=bearer("c-7", "customer"))
    assert own.json()["data"] == {
        "orderEvents": [{"type": "OrderPlaced"}],
        "orderAt": {"customerId": "c-7"},
    }
    other = await client.post("/graphql", json={"query": query}, headers=bearer("c-8", "customer"))
    codes = {e["extensions"]["code"] for e in other.json()["errors"]}
    assert codes == {"FORBIDDEN"}
    refused = await client.post(
        "/graphql", json={"query": PAYMENT}, headers=bearer("c-7", "customer")
    )
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    log = await client.post(
        "/graphql",
        json={"query": "{ events { edges { cursor } } }"},
        headers=bearer("c-7", "customer"),
    )
    assert log.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_unexpected_errors_are_masked_and_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="api.graphql.extensions"):
        response = await client.post(
            "/graphql", json={"query": "{ broken }"}, headers=bearer("s", "staff")
        )
    (error,) = response.json()["errors"]
    assert error["message"] == "Unexpected error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "hunter2" not in response.text
    assert "hunter2" in caplog.text


async def test_graphql_validation_errors_are_not_masked(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ nosuchfield }"}, headers=bearer("s", "staff")
    )
    (error,) = response.json()["errors"]
    assert "nosuchfield" in error["message"]


async def test_graphql_response_json_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ __typename }"},
        headers={**bearer("s", "staff"), "Accept": "application/graphql-response+json"},
    )
    assert response.json()["data"] == {"__typename": "Query"}


async def test_a_websocket_without_a_token_is_rejected(base_url: str) -> None:
    url = f"ws://{base_url}/graphql"
    async with websockets.connect(url, subprotocols=[TRANSPORT_WS]) as ws:
        await ws.send(orjson.dumps({"type": "connection_init", "payload": {}}).decode())
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_a_websocket_with_a_token_subscribes(
    base_url: str, client: httpx.AsyncClient
) -> None:
    await client.post(
        "/graphql",
        json={"query": PLACE, "variables": {"input": order_input("o-ws", "c-1")}},
        headers=bearer("s", "staff"),
    )
    token = bearer("c-1", "customer")["Authorization"]
    url = f"ws://{base_url}/graphql"
    async with websockets.connect(url, subprotocols=[TRANSPORT_WS]) as ws:
        init = {"type": "connection_init", "payload": {"authorization": token}}
        await ws.send(orjson.dumps(init).decode())
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        query = 'subscription { orderEvents(id: "o-ws") { type version } }'
        subscribe = {"id": "1", "type": "subscribe", "payload": {"query": query}}
        await ws.send(orjson.dumps(subscribe).decode())
        message = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message["payload"]["data"]["orderEvents"] == {"type": "OrderPlaced", "version": 1}
        await ws.send(orjson.dumps({"id": "1", "type": "complete"}).decode())


async def test_a_customer_cancels_its_own_orders_only(client: httpx.AsyncClient) -> None:
    await client.post(
        "/graphql",
        json={"query": PLACE, "variables": {"input": order_input("o-9", "c-9")}},
        headers=bearer("s", "staff"),
    )
    cancel = 'mutation { cancelOrder(input: {orderId: "o-9", reason: "no"}) { __typename } }'
    other = await client.post("/graphql", json={"query": cancel}, headers=bearer("c-1", "customer"))
    assert other.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    own = await client.post("/graphql", json={"query": cancel}, headers=bearer("c-9", "customer"))
    assert own.json()["data"]["cancelOrder"]["__typename"] == "CommandAccepted"


async def test_a_customer_cannot_watch_an_order_that_does_not_exist(base_url: str) -> None:
    token = bearer("c-1", "customer")["Authorization"]
    async with websockets.connect(f"ws://{base_url}/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        init = {"type": "connection_init", "payload": {"authorization": token}}
        await ws.send(orjson.dumps(init).decode())
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        query = 'subscription { orderEvents(id: "not-placed-yet") { type } }'
        subscribe = {"id": "1", "type": "subscribe", "payload": {"query": query}}
        await ws.send(orjson.dumps(subscribe).decode())
        message = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert message["type"] == "error"
    assert message["payload"][0]["extensions"]["code"] == "FORBIDDEN"
