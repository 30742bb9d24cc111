"""`PostgresEventStore`: the PostgreSQL adapter of the `EventStore` port.

Appends go through one group-commit writer task per process (`writer`: positions in commit order
across every process on the database); reads use a connection pool; catch-up subscriptions wake on
LISTEN/NOTIFY (`live`); persistent-subscription groups keep their state in PostgreSQL
(`persistent`). The schema is created and migrated on open (`schema.migrate`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import asyncpg

from eventstore.notify import HeadNotifier
from eventstore.port import (
    AppendResult,
    ExpectedVersion,
    NewEvent,
    StoreUnavailable,
    SubscriptionGroups,
)
from eventstore.postgres import operations, reads
from eventstore.postgres.live import FALLBACK_POLL, Listener
from eventstore.postgres.persistent import PostgresPersistentSubscriptions
from eventstore.postgres.schema import migrate
from eventstore.postgres.stale import explained, never_started
from eventstore.postgres.writer import GroupCommitWriter, WriterStats
from eventstore.sql.store import Read, SQLEventStore, SQLOperations, SQLReads

logger = logging.getLogger(__name__)

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


class PostgresEventStore(SQLEventStore):
    """The PostgreSQL event store. Build it with `await PostgresEventStore.open(url)`."""

    reads: ClassVar[SQLReads] = reads
    operations: ClassVar[SQLOperations] = operations
    page_size = 1000

    def __init__(self, dsn: str, pool: Any, *, listen: bool, fallback_poll: float) -> None:
        super().__init__(HeadNotifier())
        self.dsn = dsn
        self._pool = pool
        self._writer = GroupCommitWriter(pool, self._notifier.notify)
        self._listener = Listener(dsn, self._notifier, listen=listen, fallback_poll=fallback_poll)
        self._persistent = PostgresPersistentSubscriptions(
            self, pool, dsn, guard=self._unavailable_on_outage
        )

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

    @contextlib.asynccontextmanager
    async def _unavailable_on_outage(self) -> AsyncIterator[None]:
        """Losing PostgreSQL inside the block raises `StoreUnavailable`."""
        self._check_open()
        try:
            yield
        except _CONNECTION_ERRORS as error:
            raise StoreUnavailable(f"PostgreSQL is unavailable: {explained(error)}") from error

    # -- the dialect: reads on pooled connections, writes through the group-commit task -----

    async def _run(self, read: Read) -> Any:
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

    async def _submit(self, write: Callable[..., Any]) -> Any:
        return await self._writer.submit(write)

    async def _append(
        self, stream: str, events: tuple[NewEvent, ...], expected: ExpectedVersion
    ) -> AppendResult:
        # Consecutive appends share one round trip (`writer`).
        return await self._writer.append(
            operations.Append(stream=stream, events=events, expected=expected)
        )

    @property
    def listener(self) -> Listener:
        """The LISTEN connection and its counters."""
        return self._listener

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
