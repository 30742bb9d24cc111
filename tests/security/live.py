"""Servers for the abuse suite: the real service (`python -m api serve`, embedded store) on a
free port, configured through its environment like any deployment, and helpers to watch its log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping

import httpx
import pytest

from tests.e2e.gql import GraphQLClient, Orders
from tests.support.live_server import LiveServer, running_server


class LogWatch:
    """What a server wrote to its log since this watch began."""

    def __init__(self, server: LiveServer) -> None:
        self.path = server.process.log_path
        self.start = self.path.stat().st_size

    def text(self) -> str:
        """The log lines written since the start."""
        with self.path.open("rb") as log:
            log.seek(self.start)
            return log.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The service with the default limits and introspection policy."""
    with running_server(tmp_path_factory.mktemp("security-server")) as server:
        yield server


@pytest.fixture
async def client(secured: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """A keep-alive HTTP client for the test, closed at its end."""
    async with httpx.AsyncClient(base_url=secured.url, timeout=30.0, trust_env=False) as http:
        yield http


@pytest.fixture
def staff(client: httpx.AsyncClient, secured: LiveServer) -> GraphQLClient:
    """A GraphQL client acting as staff."""
    return GraphQLClient(client, secured.token(sub="staff-1", role="staff"))


@pytest.fixture
def staff_orders(staff: GraphQLClient) -> Orders:
    """The contract's mutations, as staff."""
    return Orders(staff)


async def head_position(gql: GraphQLClient) -> str | None:
    """The position of the newest event in the log, read through the API (staff)."""
    after: str | None = None
    last: str | None = None
    query = """query($after: String) { events(after: $after, first: 1000) {
        edges { cursor } pageInfo { hasNextPage endCursor } } }"""
    for _ in range(1000):
        page = (await gql.data(query, {"after": after}))["events"]
        if page["edges"]:
            last = page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            return last
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("the log did not end within 1000 pages")


async def raw_post(
    url: str, headers: Mapping[str, str], chunks: Iterable[bytes], *, chunked: bool = False
) -> tuple[int, bytes]:
    """POST /graphql over a plain socket, sending `chunks` while reading the answer, the way a
    client that reads early responses (curl, browsers) does; httpx reads only after sending
    everything, so a server that refuses early looks to it like a reset connection."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = ["POST /graphql HTTP/1.1", f"Host: {host}:{port}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    if chunked:
        head.append("Transfer-Encoding: chunked")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            for chunk in chunks:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()

    sender = asyncio.create_task(send())
    try:
        async with asyncio.timeout(30):
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return int(status_line.split()[1]), body
