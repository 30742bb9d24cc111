"""Request size limits, checked before anything is parsed: headers, bodies, query texts,
websocket messages; oversized responses; and the parser cache keeping only small documents."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from api.graphql.extensions import DEFAULT_LIMITS, document_cache
from api.graphql.schema import build_schema
from api.http.limits import RequestLimits
from tests.e2e.gql import PLACE, GraphQLClient, Orders, accepted, error_codes, item, new_id
from tests.e2e.ws import Protocol, graphql_ws
from tests.security.live import (
    LogWatch,
    client,
    head_position,
    raw_post,
    secured,
    staff,
    staff_orders,
)
from tests.support.live_server import LiveServer, running_server

__all__ = ["client", "secured", "staff", "staff_orders"]

LIMITS = RequestLimits()
PROTOCOLS: list[Protocol] = ["graphql-transport-ws", "graphql-ws"]


def _too_complex(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text[:300]
    assert error_codes(response.json()) == ["QUERY_TOO_COMPLEX"], response.text[:300]


async def test_a_huge_authorization_header_is_refused_with_431(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ __typename }"},
        headers={"Authorization": "Bearer " + "x" * 1_000_000},
    )
    _too_complex(response, 431)


async def test_a_13_mb_place_order_is_refused_unread_and_writes_nothing(
    staff: GraphQLClient, secured: LiveServer
) -> None:
    accepted(await Orders(staff).place(new_id("o")))
    before = await head_position(staff)
    lines = [item(f"product-{n}") for n in range(200_000)]
    body = orjson.dumps(
        {"query": PLACE, "variables": {"input": {"customerId": "c-1", "items": lines}}}
    )
    assert len(body) > 13_000_000
    headers = {
        "Authorization": f"Bearer {staff.token}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
    }
    chunks = (body[n : n + 65_536] for n in range(0, len(body), 65_536))
    status, answer = await raw_post(secured.url, headers, chunks)
    assert status == 413
    assert error_codes(orjson.loads(answer)) == ["QUERY_TOO_COMPLEX"]
    assert str(LIMITS.max_body_bytes) in answer.decode()
    assert await head_position(staff) == before


async def test_a_chunked_body_is_refused_once_past_the_limit(
    staff: GraphQLClient, secured: LiveServer
) -> None:
    # No Content-Length to refuse on: the server counts what arrives and stops at the limit.
    def chunks() -> Iterator[bytes]:
        yield b'{"query": "{ __typename }", "variables": {"pad": "'
        for _ in range(4 * LIMITS.max_body_bytes // 65_536):
            yield b"x" * 65_536
        yield b'"}}'

    headers = {"Authorization": f"Bearer {staff.token}", "Content-Type": "application/json"}
    status, answer = await raw_post(secured.url, headers, chunks(), chunked=True)
    assert status == 413
    assert error_codes(orjson.loads(answer)) == ["QUERY_TOO_COMPLEX"]


async def test_a_long_query_text_is_refused_before_parsing(staff: GraphQLClient) -> None:
    # A comment is not a token: the token limit alone lets any length through.
    query = "{ __typename }\n#" + "x" * (DEFAULT_LIMITS.max_query_length + 1)
    result = await staff.execute(query)
    assert error_codes(result) == ["QUERY_TOO_COMPLEX"], result
    assert result.get("data") is None


async def _drain(ws: ClientConnection) -> None:
    """Read until the server closes (keep-alives may come first)."""
    async with asyncio.timeout(10):
        while True:
            await ws.recv()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_oversized_websocket_message_closes_the_connection(
    secured: LiveServer, protocol: Protocol
) -> None:
    token = secured.token(sub="staff-1", role="staff")
    async with connect(
        secured.ws_url, subprotocols=[Subprotocol(protocol)], proxy=None, open_timeout=10
    ) as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await ws.send(orjson.dumps(init).decode())
        assert orjson.loads(await ws.recv())["type"] == "connection_ack"
        kind = "subscribe" if protocol == "graphql-transport-ws" else "start"
        pad = "x" * (LIMITS.max_ws_message_bytes + 1)
        query = "subscription { dashboardStats { totalOrders } }"
        payload = {"query": query, "variables": {"pad": pad}}
        await ws.send(orjson.dumps({"type": kind, "id": "1", "payload": payload}).decode())
        with pytest.raises(ConnectionClosed) as closed:
            await _drain(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_long_query_over_a_websocket_is_refused(
    secured: LiveServer, protocol: Protocol
) -> None:
    token = secured.token(sub="staff-1", role="staff")
    query = "subscription { dashboardStats { totalOrders } }\n#" + "x" * 70_000
    async with graphql_ws(secured.ws_url, token, protocol) as ws:
        sub = await ws.subscribe(query)
        message = await sub.message()
    payload = cast("Any", message.payload)
    errors = payload if isinstance(payload, list) else payload.get("errors", [payload])
    codes = [(e.get("extensions") or {}).get("code") for e in errors]
    assert codes == ["QUERY_TOO_COMPLEX"], message


@pytest.fixture(scope="module")
def small_responses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose response limit is small enough to reach with a few orders."""
    root = tmp_path_factory.mktemp("small-responses")
    with running_server(root, {"MAX_RESPONSE_BYTES": "4000"}) as server:
        yield server


async def test_an_oversized_response_is_replaced_by_an_error(
    small_responses: LiveServer,
) -> None:
    async with httpx.AsyncClient(
        base_url=small_responses.url, timeout=30.0, trust_env=False
    ) as http:
        gql = GraphQLClient(http, small_responses.token(sub="staff-1", role="staff"))
        orders = Orders(gql)
        for _ in range(10):
            accepted(await orders.place(new_id("o"), items=[item(f"p-{n}") for n in range(5)]))
        small = await gql.data("{ events(first: 1) { edges { node { id } } } }")
        assert len(small["events"]["edges"]) == 1
        log = LogWatch(small_responses)
        response = await gql.post(
            "{ orderEvents: events(first: 50) { edges { node { data metadata } } } }"
        )
    _too_complex(response, 200)
    assert "smaller pages" in response.json()["errors"][0]["message"]
    assert "event=response_refused" in log.text()


async def test_the_parser_cache_keeps_only_small_documents() -> None:
    schema = build_schema()
    cache = document_cache(DEFAULT_LIMITS.cache_bytes)
    small = "query CacheProbeSmall { __typename }"
    await schema.execute(small)
    await schema.execute(small)
    hits = cache.hits
    await schema.execute(small)
    assert cache.hits == hits + 1
    large = "query CacheProbeLarge { __typename }\n#" + "x" * DEFAULT_LIMITS.max_cached_document
    size, misses = len(cache), cache.misses
    result = await schema.execute(large)
    assert not result.errors, result.errors
    assert len(cache) == size
    assert cache.misses == misses


async def test_a_websocket_handshake_with_huge_headers_is_refused(secured: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            secured.ws_url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            # Lines under the websocket library's own line limit, together over ours.
            additional_headers={f"X-Padding-{n}": "x" * 4000 for n in range(5)},
            proxy=None,
            open_timeout=10,
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_a_websocket_handshake_with_one_huge_header_line_is_answered_at_once(
    secured: LiveServer,
) -> None:
    # A line over the websocket library's own limit (8 KiB): its parser refuses it with 431
    # before the app sees it, and the answer must reach the client (unsent, the client times
    # out instead: TimeoutError, not InvalidStatus).
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            secured.ws_url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            additional_headers={"X-Padding": "x" * 10_000},
            proxy=None,
            open_timeout=10,
        ):
            pass
    assert refused.value.response.status_code == 431
