"""Connections that have not said who they are must not hold the server: a client that sends
nothing, or trickles its headers or body, is cut off; past a connection cap, 503. HTTP
connections and websockets are capped apart, in all and per client address (each loopback
address, 127.0.0.x, is another client here), and acknowledged websockets per identity."""

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

from tests.e2e.ws import GraphQLWebSocket, WsRejected, graphql_ws
from tests.security.live import LogWatch
from tests.support.live_server import LiveServer, running_server

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
PER_ADDRESS = 4
MAX_WEBSOCKETS = 6
ANONYMOUS_WEBSOCKETS = 2
SOCKETS_PER_IDENTITY = 3
CUT_OFF_WITHIN = 6.0
"""Seconds a test waits for the server to cut a connection off (the limits are 1 s)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with tight limits (only this module's tests use it, one at a time)."""
    env = {
        "HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "MAX_HTTP_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
        "MAX_WEBSOCKETS": str(MAX_WEBSOCKETS),
        "MAX_ANONYMOUS_WEBSOCKETS_PER_ADDRESS": str(ANONYMOUS_WEBSOCKETS),
        "MAX_WEBSOCKETS_PER_IDENTITY": str(SOCKETS_PER_IDENTITY),
    }
    with running_server(tmp_path_factory.mktemp("connection-limits"), env) as live:
        yield live


@contextlib.asynccontextmanager
async def _raw(
    server: LiveServer, address: str = "127.0.0.1"
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, local_addr=(address, 0)
    )
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


def _http(server: LiveServer, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=server.url, transport=transport, trust_env=False)


async def _upgrade(
    server: LiveServer, address: str
) -> contextlib.AbstractAsyncContextManager[object]:
    """A websocket that never sends `connection_init` (refused: `InvalidStatus`)."""
    return connect(
        server.ws_url,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        proxy=None,
        local_addr=(address, 0),
    )


async def test_one_address_past_its_http_cap_gets_503_and_others_are_served(
    server: LiveServer,
) -> None:
    watch = LogWatch(server)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(PER_ADDRESS):  # half a request line each, held open
            _, writer = await stack.enter_async_context(_raw(server, "127.0.0.2"))
            writer.write(b"GET /heal")
        await asyncio.sleep(0.2)
        async with _raw(server, "127.0.0.2") as (reader, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await _read_until_closed(reader)
        assert _status(answer) == 503
        assert b"retry-after: 1" in answer.lower()
        async with _http(server, "127.0.0.3") as http:
            assert (await http.get("/healthz")).status_code == 200
    await asyncio.sleep(0.3)
    async with _http(server, "127.0.0.2") as http:
        assert (await http.get("/healthz")).status_code == 200  # its places are back
    assert "identity=address:127.0.0.2 budget=http_connections_per_address" in watch.text()


async def test_websockets_are_capped_apart_from_http(server: LiveServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        held: list[GraphQLWebSocket] = []
        for n in range(MAX_WEBSOCKETS):
            token = server.token(sub=f"holder-{n % 2}")
            held.append(await stack.enter_async_context(graphql_ws(server.ws_url, token)))
        with pytest.raises(InvalidStatus) as rejected:
            async with await _upgrade(server, "127.0.0.1"):
                pass
        assert rejected.value.response.status_code == 503
        async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
            assert (await http.get("/healthz")).status_code == 200  # HTTP is counted apart
        await held.pop().close()
        await asyncio.sleep(0.2)
        async with graphql_ws(server.ws_url, server.token(sub="holder-1")):
            pass  # a freed place serves again


async def test_unacknowledged_websockets_are_capped_per_address(server: LiveServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(ANONYMOUS_WEBSOCKETS):
            await stack.enter_async_context(await _upgrade(server, "127.0.0.4"))
        with pytest.raises(InvalidStatus) as rejected:
            async with await _upgrade(server, "127.0.0.4"):
                pass
        assert rejected.value.response.status_code == 503
        token = server.token(sub="elsewhere")
        async with graphql_ws(server.ws_url, token, local_addr=("127.0.0.5", 0)):
            pass  # another address is not held back by them


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_one_identity_holds_only_so_many_sockets(server: LiveServer, protocol: str) -> None:
    token = server.token(sub=f"hoarder-{protocol}")
    async with contextlib.AsyncExitStack() as stack:
        held = [
            await stack.enter_async_context(graphql_ws(server.ws_url, token, protocol))  # type: ignore[arg-type]
            for _ in range(SOCKETS_PER_IDENTITY)
        ]
        with pytest.raises(WsRejected) as rejected:
            async with graphql_ws(server.ws_url, token, protocol):  # type: ignore[arg-type]
                pass
        assert rejected.value.code == 1013
        async with graphql_ws(server.ws_url, server.token(sub=f"other-{protocol}"), protocol):  # type: ignore[arg-type]
            pass  # another customer is served
        await held.pop().close()
        await asyncio.sleep(0.2)
        async with graphql_ws(server.ws_url, token, protocol):  # type: ignore[arg-type]
            pass  # its freed place serves it again


async def test_a_flood_of_refused_connections_logs_a_count_not_a_flood(
    server: LiveServer,
) -> None:
    watch = LogWatch(server)
    async with contextlib.AsyncExitStack() as stack:
        for n in range(MAX_WEBSOCKETS):
            token = server.token(sub=f"flood-{n % 2}")
            await stack.enter_async_context(graphql_ws(server.ws_url, token))
        for _ in range(30):
            with pytest.raises(InvalidStatus):
                async with await _upgrade(server, "127.0.0.1"):
                    pass
        held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for _ in range(PER_ADDRESS):
            held.append(await stack.enter_async_context(_raw(server, "127.0.0.6")))
        for _ in range(30):
            async with _raw(server, "127.0.0.6") as (reader, writer):
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert _status(await _read_until_closed(reader)) == 503
    await asyncio.sleep(0.2)
    log = watch.text()
    assert "Exceeded concurrency limit." not in log
    refused = [line for line in log.splitlines() if "event=connections_refused" in line]
    assert len(refused) <= 2, refused  # one line per 10 s, with the count since the last
    limited = [line for line in log.splitlines() if "address:127.0.0.6" in line]
    assert 1 <= len(limited) <= 2, limited
