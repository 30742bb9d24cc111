"""`PostgresEventStore`: the PostgreSQL adapter of the `EventStore` port.

Appends go through one group-commit writer task per process (`writer`: positions in commit order
across every process on the database); reads use a connection pool; catch-up subscriptions wake on
LISTEN/NOTIFY (`live`); persistent-subscription groups keep their state in PostgreSQL
(`persistent`). The schema is created and migrated on open (`schema.migrate`).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import asyncpg
import orjson

from eventstore.deadline import DEFAULT_STORE_TIMEOUT, bounded
from eventstore.notify import HeadNotifier
from eventstore.port import (
    ANY,
    AppendResult,
    EventFilter,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StoreUnavailable,
    SubscriptionGroups,
)
from eventstore.postgres import operations, reads, subscriptions
from eventstore.postgres.live import FALLBACK_POLL, Listener
from eventstore.postgres.persistent import PostgresPersistentSubscriptions
from eventstore.postgres.schema import migrate
from eventstore.postgres.stale import explained, never_started
from eventstore.postgres.writer import GroupCommitWriter, WriterStats
from eventstore.streams import METADATA_EVENT_TYPE, metastream_of

logger = logging.getLogger(__name__)

T = TypeVar("T")

# PostgreSQL unreachable, restarting or shutting down, or out of connections: the store is
# unavailable (retryable), which is never a wrong answer.
_CONNECTION_ERRORS = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    # What asyncpg raises when the server ended a connection in the middle of its protocol.
    asyncpg.InternalClientError,
)


class PostgresEventStore:
    """The PostgreSQL event store. Build it with `await PostgresEventStore.open(url)`."""

    call_timeout: float = DEFAULT_STORE_TIMEOUT
    """STORE_TIMEOUT: seconds each call on a request's path may take (`eventstore.deadline`)."""

    def __init__(self, dsn: str, pool: Any, *, listen: bool, fallback_poll: float) -> None:
        self.dsn = dsn
        self._pool = pool
        self._notifier = HeadNotifier()
        self._writer = GroupCommitWriter(pool, self._notifier.notify)
        self._listener = Listener(dsn, self._notifier, listen=listen, fallback_poll=fallback_poll)
        self._persistent = PostgresPersistentSubscriptions(
            self, pool, dsn, guard=self._unavailable_on_outage
        )
        self._closed = False

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        pool_size: int = 10,
        listen: bool = True,
        fallback_poll: float = FALLBACK_POLL,
    ) -> PostgresEventStore:
        """Connect to `dsn` (`postgresql://...`), creating or migrating the schema.
        `listen=False` leaves live delivery to the fallback poll alone (for tests)."""
        try:
            pool = await asyncpg.create_pool(dsn, min_size=2, max_size=pool_size)
        except _CONNECTION_ERRORS as error:
            raise StoreUnavailable(f"PostgreSQL is unreachable: {error}") from error
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            store = cls(dsn, pool, listen=listen, fallback_poll=fallback_poll)
            await store._listener.start()
        except _CONNECTION_ERRORS as error:
            # e.g. the connection limit reached after the pool's first connections
            pool.terminate()
            raise StoreUnavailable(f"PostgreSQL is unavailable: {explained(error)}") from error
        except BaseException:
            await pool.close()
            raise
        store._writer.start()
        await store._persistent.start()
        return store

    @property
    def writer_stats(self) -> WriterStats:
        """Commits and writes of this process so far: writes / commits is the group-commit
        factor."""
        return self._writer.stats

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the event store is closed")

    @contextlib.asynccontextmanager
    async def _unavailable_on_outage(self) -> AsyncIterator[None]:
        """Losing PostgreSQL inside the block raises `StoreUnavailable`."""
        self._check_open()
        try:
            yield
        except _CONNECTION_ERRORS as error:
            raise StoreUnavailable(f"PostgreSQL is unavailable: {explained(error)}") from error

    async def _read(self, read: Callable[[Any], Awaitable[T]]) -> T:
        """Run `read` on a pooled connection; losing PostgreSQL raises `StoreUnavailable`."""
        self._check_open()
        attempts = self._pool.get_max_size() + 1  # every idle one may have been ended at once
        for attempt in range(1, attempts + 1):
            try:
                async with self._pool.acquire() as conn:
                    try:
                        return await read(conn)
                    except _CONNECTION_ERRORS:
                        conn.terminate()  # never reused: the pool opens a fresh one
                        raise
            except _CONNECTION_ERRORS as error:
                if attempt < attempts and never_started(error):
                    continue  # ended while idle in the pool: eventstore.postgres.stale
                raise StoreUnavailable(f"PostgreSQL is unavailable: {explained(error)}") from error
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- writes ----------------------------------------------------------------------------

    @bounded
    async def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        """Append atomically once committed; idempotent for the same ids at the same
        expectation."""
        self._check_open()
        return await self._writer.append(
            operations.Append(stream=stream, events=tuple(events), expected=expected)
        )

    @bounded
    async def delete_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Soft delete: `$tb` metadata hides every event so far; appending again resumes."""
        self._check_open()
        await self._writer.submit(
            partial(operations.delete, stream=stream, expected=expected, event_id=uuid.uuid4())
        )

    @bounded
    async def tombstone_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Hard delete: every later read or append of the stream raises `StreamDeleted`."""
        self._check_open()
        await self._writer.submit(
            partial(operations.tombstone, stream=stream, expected=expected, event_id=uuid.uuid4())
        )

    @bounded
    async def set_stream_metadata(
        self, stream: str, metadata: dict[str, object], expected: ExpectedVersion = ANY
    ) -> None:
        """Replace the metadata; `expected` is about the metastream `$$<stream>`."""
        event = NewEvent(id=uuid.uuid4(), type=METADATA_EVENT_TYPE, data=orjson.dumps(metadata))
        await self.append(metastream_of(stream), [event], expected)

    # -- reads -----------------------------------------------------------------------------

    @bounded
    async def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Readable events of one stream (`$maxCount` and `$tb` honoured); missing: []."""
        return await self._read(
            partial(
                reads.read_stream,
                stream=stream,
                from_version=from_version,
                backwards=backwards,
                limit=limit,
            )
        )

    @bounded
    async def read_all(
        self,
        *,
        from_position: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
        filter: EventFilter | None = None,
    ) -> list[RecordedEvent]:
        """Events of the global log from `from_position` (inclusive), filtered."""
        return await self._read(
            partial(
                reads.read_all,
                from_position=from_position,
                backwards=backwards,
                limit=limit,
                filter=filter,
            )
        )

    @bounded
    async def head_position(self) -> int:
        """The newest event's position, 0 when the log is empty."""
        return await self._read(reads.head_position)

    @bounded
    async def get_stream_metadata(self, stream: str) -> dict[str, object]:
        """The newest metadata of `stream`, empty when none was set."""
        metadata: dict[str, object] = await self._read(
            partial(reads.stream_metadata, stream=stream)
        )
        return metadata

    def subscribe_stream(
        self, stream: str, *, after_version: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Catch-up subscription to one stream after `after_version` (exclusive), then live."""
        self._check_open()
        return subscriptions.subscribe_stream(
            self._read, self._notifier, stream, after_version=after_version
        )

    def subscribe_all(
        self, *, after_position: int | None = None, filter: EventFilter | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Catch-up subscription to the global log after `after_position` (exclusive), then
        live."""
        self._check_open()
        return subscriptions.subscribe_all(
            self._read, self._notifier, after_position=after_position, filter=filter
        )

    @property
    def listener(self) -> Listener:
        """The LISTEN connection and its counters."""
        return self._listener

    @property
    def live_waiters(self) -> int:
        """Subscribers currently waiting for the next commit (0 once all are closed)."""
        return self._notifier.waiting

    # -- persistent subscriptions ----------------------------------------------------------

    @property
    def groups(self) -> SubscriptionGroups:
        """The store's persistent-subscription groups (`eventstore.persistent`), shared by the
        processes on the database by partitions (`eventstore.postgres.persistent`)."""
        return self._persistent

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop persistent subscriptions, commit queued writes, close every connection and end
        live catch-up subscriptions (they raise `SubscriptionDropped`)."""
        if self._closed:
            return
        await self._persistent.close()
        self._closed = True
        await self._writer.close()
        await self._listener.close()
        await self._pool.close()
        # Sleeping subscribers wake, find the store closed, and end.
        self._notifier.notify()
