"""Applying a long run of changes (a catch-up, a rebuild) with Redis never idle between batches.

`RedisViewStore.apply_packed` sends a batch as one pipeline and waits for its replies before the
caller can send the next: Redis idles while the client reads the replies, counts them and packs
the next batch, and the client idles while Redis applies. `ApplyStream` holds one connection and
writes each batch as soon as it is given, reading the replies of earlier batches behind it.
Redis runs one connection's commands in the order they arrive, so the changes are still applied
strictly in order; each chunk is still one call of apply.lua, which stores a chunk's position
with the changes it covers.

On NOSCRIPT (a flushed or failed-over server) or a lost connection, the chunks not yet answered
are sent again, in order, on a fresh connection (after loading the script): the script is
idempotent, so a chunk that did run before the failure answers duplicates. A Redis Cluster
client has no single connection to hold: there each batch is applied by `apply_packed` as it is
sent, one after the other.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from projections.keys import as_text
from projections.redis_store import CHUNK, ApplyResult, RedisViewStore, chunk_sizes, results_of

RESEND_ATTEMPTS = 3
"""Failures in a row (NOSCRIPT, a lost connection) after which the error is raised."""

_RETRYABLE = (NoScriptError, RedisConnectionError, RedisTimeoutError)


@dataclass(slots=True)
class _Batch:
    """One `send`: its chunks as the script takes them, and the replies read so far."""

    chunks: list[bytes]
    sizes: list[int]
    replies: list[str] = field(default_factory=list)
    results: list[ApplyResult] | None = None  # set at once when applied without a connection


class ApplyStream:
    """Batches of packed changes applied in order, the next written before the last is answered.

    Use through `applying`; `send` a batch, then `receive` the results of the
    oldest batch not yet received (one `ApplyResult` per change, as `apply_packed` gives them).
    """

    def __init__(self, views: RedisViewStore, *, namespace: str, publish: bool) -> None:
        self._views = views
        self._keys = [views.keys.pointer, views.keys.building]
        self._namespace = namespace
        self._flag = "1" if publish else "0"
        self._batches: collections.deque[_Batch] = collections.deque()
        self._connection: AbstractConnection | None = None
        self._sha = ""
        self._failures = 0

    @property
    def in_flight(self) -> int:
        """Batches sent and not yet received."""
        return len(self._batches)

    async def open(self) -> None:
        """Take a connection (none for a cluster client) and make sure the script is loaded."""
        redis = self._views.redis
        if not isinstance(redis, Redis):
            return
        self._sha = as_text(await redis.script_load(self._views.apply_script))
        self._connection = await redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """Give the connection back; one closed with replies unread is dropped first."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if self._batches:
                await connection.disconnect()
        finally:
            await self._views.redis.connection_pool.release(connection)

    async def send(self, changes: Sequence[Sequence[str]]) -> None:
        """Write a batch of changes (packed as `change_args` packs them) without waiting."""
        starts = range(0, len(changes), CHUNK)
        batch = _Batch(
            chunks=[orjson.dumps(changes[start : start + CHUNK]) for start in starts],
            sizes=chunk_sizes(len(changes)),
        )
        self._batches.append(batch)
        if self._connection is None:
            batch.results = await self._views.apply_packed(
                changes, namespace=self._namespace, publish=self._flag == "1"
            )
            return
        try:
            await self._write(batch.chunks)
        except _RETRYABLE as error:
            await self._resend(error)

    async def receive(self) -> list[ApplyResult]:
        """The results of the oldest batch sent and not yet received, in order."""
        batch = self._batches[0]
        if batch.results is None:
            while len(batch.replies) < len(batch.chunks):
                assert self._connection is not None
                try:
                    reply = await self._connection.read_response()
                except _RETRYABLE as error:
                    await self._resend(error)
                    continue
                self._failures = 0
                batch.replies.append(as_text(reply))
            batch.results = results_of(batch.replies, batch.sizes)
        self._batches.popleft()
        return batch.results

    async def _write(self, chunks: Sequence[bytes]) -> None:
        assert self._connection is not None
        connection = self._connection
        commands: list[tuple[str | bytes | int, ...]] = [
            ("EVALSHA", self._sha, 2, *self._keys, self._namespace, self._flag, chunk)
            for chunk in chunks
        ]
        await connection.send_packed_command(connection.pack_commands(commands), check_health=False)

    async def _resend(self, error: Exception) -> None:
        """Send every unanswered chunk again on a fresh connection (see the module's docstring);
        raise `error` after `RESEND_ATTEMPTS` failures in a row."""
        while True:
            self._failures += 1
            if self._failures > RESEND_ATTEMPTS:
                raise error
            assert self._connection is not None
            await self._connection.disconnect()  # unread replies go with the old connection
            await asyncio.sleep(0.05 * (self._failures - 1))
            try:
                if isinstance(error, NoScriptError):
                    self._sha = as_text(
                        await self._views.redis.script_load(self._views.apply_script)
                    )
                unanswered = [c for b in self._batches for c in b.chunks[len(b.replies) :]]
                await self._write(unanswered)
                return
            except _RETRYABLE as again:
                error = again


@asynccontextmanager
async def applying(
    views: RedisViewStore, *, namespace: str = "", publish: bool = True
) -> AsyncIterator[ApplyStream]:
    """An `ApplyStream` into `views` for the block (`namespace` and `publish` as for
    `RedisViewStore.apply_packed`)."""
    stream = ApplyStream(views, namespace=namespace, publish=publish)
    await stream.open()
    try:
        yield stream
    finally:
        await stream.close()
