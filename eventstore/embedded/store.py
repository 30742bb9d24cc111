"""`SQLiteEventStore`: the embedded adapter of the `EventStore` port.

One SQLite file (WAL, synchronous=FULL) written by a group-commit thread and read by pooled
connections in worker threads. Its persistent-subscription groups (`groups`) are
`eventstore.embedded.persistent.EmbeddedPersistentSubscriptions`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson

from eventstore.deadline import DEFAULT_STORE_TIMEOUT, bounded
from eventstore.embedded import operations, reads, subscriptions
from eventstore.embedded.lock import DataDirLock
from eventstore.embedded.persistent import EmbeddedPersistentSubscriptions
from eventstore.embedded.pool import ReaderPool
from eventstore.embedded.schema import DB_FILE_NAME, connect, create_schema
from eventstore.embedded.writer import GroupCommitWriter, WriterStats
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
from eventstore.streams import METADATA_EVENT_TYPE, metastream_of

logger = logging.getLogger(__name__)

INLINE_READ_LIMIT = 64
"""Marked reads of at most this many events run on the event loop: measured, such a read (an
indexed range of a few dozen rows, from pages WAL readers keep cached) takes about as long as the
hop to a reader thread and back, so the hop would double a snapshot load."""
PROBE_AFTER = 5.0
"""A write path that committed this recently needs no probe."""

T = TypeVar("T")


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        create_schema(conn)
    finally:
        conn.close()


class SQLiteEventStore:
    """The embedded event store. Build it with `await SQLiteEventStore.open(data_dir)`."""

    call_timeout: float = DEFAULT_STORE_TIMEOUT
    """STORE_TIMEOUT: seconds each call on a request's path may take (`eventstore.deadline`)."""

    def __init__(
        self,
        path: Path,
        writer: GroupCommitWriter | None,
        pool: ReaderPool,
        notifier: HeadNotifier,
        lock: DataDirLock | None = None,
    ) -> None:
        self.path = path
        self._writer = writer
        self._pool = pool
        self._notifier = notifier
        self._lock = lock
        self._persistent: EmbeddedPersistentSubscriptions | None = None
        self._closed = False

    @classmethod
    async def open(cls, data_dir: Path, *, read_only: bool = False) -> SQLiteEventStore:
        """Open (creating when missing) `data_dir / "events.sqlite3"`, holding DATA_DIR's lock
        (`DataDirLocked` names the process that has it).

        `read_only` opens an existing file for reading beside the process that writes it
        (SQLite's WAL lets readers in while it commits): no lock, no writer, no persistent
        subscriptions; writes raise `StoreUnavailable`. Live subscriptions then only see what
        was committed when they last read, so it suits reading the log up to a point."""
        path = data_dir / DB_FILE_NAME
        if read_only:
            if not path.exists():
                raise StoreUnavailable(f"no event store at {path}")
            return cls(path, None, ReaderPool(path), HeadNotifier())
        lock = await asyncio.to_thread(DataDirLock.acquire, data_dir)
        try:
            await asyncio.to_thread(_create, path)
        except BaseException:
            lock.release()
            raise
        notifier = HeadNotifier()
        writer = GroupCommitWriter(path, notifier.notify)
        writer.start()
        store = cls(path, writer, ReaderPool(path), notifier, lock)
        persistent = EmbeddedPersistentSubscriptions(store, path)
        try:
            await persistent.start()
        except BaseException:
            await store.close()
            raise
        store._persistent = persistent
        return store

    @property
    def writer_stats(self) -> WriterStats:
        """Commits and writes so far: writes / commits is the group-commit factor."""
        return self._writer.stats if self._writer is not None else WriterStats(commits=0, writes=0)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the event store is closed")

    def _writable(self) -> GroupCommitWriter:
        self._check_open()
        if self._writer is None:
            raise StoreUnavailable("the event store was opened read-only")
        return self._writer

    # -- writes ----------------------------------------------------------------------------

    @bounded
    async def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        """Append atomically once durable; idempotent for the same ids at the same expectation.
        Any stream name is accepted, `$`-prefixed system streams included."""
        writer = self._writable()
        batch = tuple(events)
        result: AppendResult = await writer.submit(
            partial(operations.append, stream=stream, events=batch, expected=expected)
        )
        return result

    @bounded
    async def check_writes(self) -> None:
        """Raise StoreUnavailable unless a write can be made durable now: the last batch's
        outcome when it is recent and good, else a real write (a one-row probe table through
        the group commit, so a full disk or a dead writer shows)."""
        writer = self._writable()
        at, error = writer.last_outcome
        if error is None and time.monotonic() - at < PROBE_AFTER:
            return
        await writer.submit(operations.probe_write)

    @bounded
    async def delete_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Soft delete: `$tb` metadata hides every event so far; appending again resumes."""
        await self._writable().submit(
            partial(operations.delete, stream=stream, expected=expected, event_id=uuid.uuid4())
        )

    @bounded
    async def tombstone_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Hard delete: every later read or append of the stream raises `StreamDeleted`."""
        await self._writable().submit(
            partial(operations.tombstone, stream=stream, expected=expected, event_id=uuid.uuid4())
        )

    @bounded
    async def set_stream_metadata(
        self, stream: str, metadata: dict[str, object], expected: ExpectedVersion = ANY
    ) -> None:
        """Replace the metadata; `expected` is about the metastream `$$<stream>`, as on
        EventStoreDB."""
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
        self._check_open()
        return await self._pool.run(
            partial(
                reads.read_stream,
                stream=stream,
                from_version=from_version,
                backwards=backwards,
                limit=limit,
            )
        )

    @bounded
    async def read_from_mark(
        self,
        mark_stream: str,
        stream: str,
        start: Callable[[RecordedEvent | None], tuple[T, int]],
        *,
        limit: int,
    ) -> tuple[T, list[RecordedEvent]]:
        """The mark and the events it points to in one read (see `MarkedReads`): on the event
        loop up to `INLINE_READ_LIMIT` events, else in one hop to a reader."""
        self._check_open()
        read = partial(
            reads.read_from_mark, mark_stream=mark_stream, stream=stream, start=start, limit=limit
        )
        if limit <= INLINE_READ_LIMIT:
            return self._pool.run_here(read)
        return await self._pool.run(read)

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
        self._check_open()
        return await self._pool.run(
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
        self._check_open()
        return await self._pool.run(reads.head_position)

    @bounded
    async def get_stream_metadata(self, stream: str) -> dict[str, object]:
        """The newest metadata of `stream`, empty when none was set."""
        self._check_open()
        metadata: dict[str, Any] = await self._pool.run(
            partial(reads.stream_metadata, stream=stream)
        )
        return metadata

    def subscribe_stream(
        self, stream: str, *, after_version: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Catch-up subscription to one stream after `after_version` (exclusive), then live."""
        self._check_open()
        return subscriptions.subscribe_stream(
            self._pool, self._notifier, stream, after_version=after_version
        )

    def subscribe_all(
        self, *, after_position: int | None = None, filter: EventFilter | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Catch-up subscription to the global log after `after_position` (exclusive), then
        live."""
        self._check_open()
        return subscriptions.subscribe_all(
            self._pool, self._notifier, after_position=after_position, filter=filter
        )

    @property
    def live_waiters(self) -> int:
        """Subscribers currently waiting for the next commit (0 once all are closed)."""
        return self._notifier.waiting

    # -- persistent subscriptions ----------------------------------------------------------

    @property
    def groups(self) -> SubscriptionGroups:
        """The store's persistent-subscription groups (`eventstore.persistent`)."""
        self._check_open()
        if self._persistent is None:
            raise StoreUnavailable("the event store was opened read-only: it has no groups")
        return self._persistent

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop persistent subscriptions, commit queued writes, close every connection and end
        live catch-up subscriptions (they raise `SubscriptionDropped`)."""
        if self._closed:
            return
        if self._persistent is not None:
            await self._persistent.close()
        self._closed = True
        if self._writer is not None:
            await self._writer.close()
        self._pool.close()
        # Sleeping subscribers wake, find the pool closed, and end.
        self._notifier.notify()
        if self._lock is not None:
            self._lock.release()
