"""Connections that have not said who they are must not hold the server: a client that sends
nothing, or trickles its headers or body, is cut off; past the connection cap, 503."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from tests.e2e.ws import GraphQLWebSocket, graphql_ws
from tests.live_server import LiveServer, running_server

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_CONNECTIONS = 4
CUT_OFF_WITHIN = 6.0
"""Seconds a test waits for the server to cut a connection off (the limits are 1 s)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with tight limits (only this module's tests use it, one at a time)."""
    env = {
        "HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    with running_server(tmp_path_factory.mktemp("connection-limits"), env) as live:
        yield live


@contextlib.asynccontextmanager
async def _raw(
    server: LiveServer,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes, or an AssertionError if it never does."""
    try:
        async with asyncio.timeout(CUT_OFF_WITHIN):
            return await reader.read()
    except TimeoutError:
        raise AssertionError(f"connection still open after {CUT_OFF_WITHIN} s") from None


async def _trickle(writer: asyncio.StreamWriter, data: bytes, every: float = 0.25) -> None:
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)


def _status(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer.split(b" ", 2)[1])


async def test_a_connection_that_sends_nothing_is_closed(server: LiveServer) -> None:
    async with _raw(server) as (reader, _writer):
        started = time.monotonic()
        answer = await _read_until_closed(reader)
    assert _status(answer) == 408
    assert time.monotonic() - started >= HEADER_TIMEOUT - 0.2


async def test_trickled_headers_are_cut_off(server: LiveServer) -> None:
    head = b"POST /graphql HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    async with _raw(server) as (reader, writer):
        writer.write(head[:20])
        trickling = asyncio.create_task(_trickle(writer, head[20:]))
        try:
            answer = await _read_until_closed(reader)
        finally:
            trickling.cancel()
    assert _status(answer) == 408


async def test_a_trickled_body_is_cut_off(server: LiveServer) -> None:
    token = server.token(sub="slow-body")
    body = b'{"query": "{ orders { edges { cursor } } }"}' + b" " * 100
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    async with _raw(server) as (reader, writer):
        writer.write(head + body[:10])
        trickling = asyncio.create_task(_trickle(writer, body[10:]))
        try:
            answer = await _read_until_closed(reader)
        finally:
            trickling.cancel()
    assert _status(answer) == 408
    await asyncio.sleep(0.3)
    log = server.process.log_path.read_text()
    assert "ClientDisconnect" not in log, "a cut-off client must not log a traceback"


async def test_a_kept_alive_connection_serves_request_after_request(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
        for _ in range(3):
            assert (await http.get("/healthz")).status_code == 200
            await asyncio.sleep(HEADER_TIMEOUT * 0.6)  # idle between requests is not a slow head


async def test_connections_past_the_cap_get_503(server: LiveServer) -> None:
    token = server.token(sub="many-sockets")
    async with contextlib.AsyncExitStack() as stack:
        held: list[GraphQLWebSocket] = []
        for _ in range(MAX_CONNECTIONS):
            held.append(await stack.enter_async_context(graphql_ws(server.ws_url, token)))
        async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
            refused = await http.get("/healthz")
        assert refused.status_code == 503
        with pytest.raises(InvalidStatus) as rejected:
            async with connect(
                server.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], proxy=None
            ):
                pass
        assert rejected.value.response.status_code == 503
        await held.pop().close()
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
            assert (await http.get("/healthz")).status_code == 200  # a freed place serves again


async def test_a_flood_of_refused_connections_logs_a_count_not_a_flood(
    server: LiveServer,
) -> None:
    token = server.token(sub="flood-sockets")
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(MAX_CONNECTIONS):
            await stack.enter_async_context(graphql_ws(server.ws_url, token))
        for _ in range(30):
            async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
                assert (await http.get("/healthz")).status_code == 503
    await asyncio.sleep(0.2)
    log = server.process.log_path.read_text()
    assert "Exceeded concurrency limit." not in log
    lines = [line for line in log.splitlines() if "event=connections_refused" in line]
    assert 1 <= len(lines) <= 2, lines  # one line per 10 s, with the count since the last
