"""A lean HTTP/1.1 keep-alive load generator for GraphQL POSTs.

httpx spends more CPU per request than a small Starlette app does, so on a 2-core machine it would
measure itself. This client sends pre-encoded request bytes over raw asyncio streams and parses
only the status line and `Content-Length` (or chunked framing) of each response.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where GraphQL requests go."""

    host: str
    port: int
    path: str = "/graphql"

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        """`http://host:port[/path]`; the path defaults to /graphql."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"need an http:// URL with a host, got {url!r}")
        path = parts.path if parts.path not in ("", "/") else "/graphql"
        return cls(host=parts.hostname, port=parts.port or 80, path=path)


def encode_graphql_post(
    endpoint: Endpoint, query: str, variables: dict[str, object], token: str | None
) -> bytes:
    """One complete HTTP/1.1 request, ready to write as is."""
    body = orjson.dumps({"query": query, "variables": variables})
    head = [
        f"POST {endpoint.path} HTTP/1.1",
        f"Host: {endpoint.host}:{endpoint.port}",
        "Content-Type: application/json",
        "Accept: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token is not None:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ProtocolError(RuntimeError):
    """The server's answer was not HTTP/1.1 this client understands."""


class Connection:
    """One keep-alive connection; requests on it are sequential."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, endpoint: Endpoint) -> Connection:
        """Connect to `endpoint`."""
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one pre-encoded request; its status code and body."""
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.partition(b"\r\n")
        try:
            status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise ProtocolError(f"bad status line {status_line!r}") from None
        length: int | None = None
        chunked = False
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            return status, await self._read_chunked()
        if length is None:
            raise ProtocolError("response without Content-Length or chunked framing")
        return status, await self._reader.readexactly(length)

    async def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        # The server may already have dropped an idle connection.
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


@dataclass(slots=True, kw_only=True)
class RunStats:
    """What one load run measured."""

    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def commands(self) -> int:
        """Requests answered (successfully or not)."""
        return len(self.latencies_ns)

    @property
    def throughput(self) -> float:
        """Requests per second over the whole run."""
        return self.commands / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """The latency below which `fraction` of requests finished, in milliseconds."""
        if not self.latencies_ns:
            return float("nan")
        ordered = sorted(self.latencies_ns)
        index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[index] / 1e6


Flow = Sequence[bytes]
"""Pre-encoded requests sent one after the other on one connection (e.g. place, pay, ship)."""

Success = Callable[[int, bytes], bool]


async def run_flows(
    endpoint: Endpoint,
    flows: Sequence[Flow],
    *,
    concurrency: int,
    success: Success,
    on_progress: Callable[[int], None] | None = None,
) -> RunStats:
    """Drive every flow over `concurrency` keep-alive connections and time each request."""
    stats = RunStats()
    next_flow = iter(flows)
    connections = [await Connection.open(endpoint) for _ in range(concurrency)]

    async def worker(connection: Connection) -> None:
        clock = time.perf_counter_ns
        latencies = stats.latencies_ns
        for flow in next_flow:  # a shared iterator: each flow goes to exactly one worker
            for raw in flow:
                started = clock()
                status, body = await connection.request(raw)
                latencies.append(clock() - started)
                if not success(status, body):
                    stats.errors += 1
                    if len(stats.first_errors) < 5:
                        stats.first_errors.append(f"{status} {body[:300]!r}")
            if on_progress is not None:
                on_progress(len(flow))

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        stats.elapsed_s = time.perf_counter() - started
        for connection in connections:
            await connection.close()
    return stats
