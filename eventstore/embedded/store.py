"""`SQLiteEventStore`: the embedded adapter of the `EventStore` port.

One SQLite file (WAL, synchronous=FULL) written by a group-commit thread and read by pooled
connections in worker threads: the SQLite dialect of `eventstore.sql.SQLEventStore`. Its
persistent-subscription groups (`groups`) are
`eventstore.embedded.persistent.EmbeddedPersistentSubscriptions`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from eventstore.deadline import bounded
from eventstore.embedded import operations, reads
from eventstore.embedded.lock import DataDirLock
from eventstore.embedded.persistent import EmbeddedPersistentSubscriptions
from eventstore.embedded.pool import ReaderPool
from eventstore.embedded.schema import DB_FILE_NAME, connect, create_schema
from eventstore.embedded.writer import GroupCommitWriter, WriterStats
from eventstore.notify import HeadNotifier
from eventstore.port import (
    AppendResult,
    ExpectedVersion,
    MarkedRead,
    NewEvent,
    StoreUnavailable,
    SubscriptionGroups,
)
from eventstore.sql.store import Read, SQLEventStore, SQLOperations, SQLReads

logger = logging.getLogger(__name__)

INLINE_READ_LIMIT = 64
"""Marked reads of at most this many events run on the event loop: measured, such a read (an
indexed range of a few dozen rows, from pages WAL readers keep cached) takes about as long as the
hop to a reader thread and back, so the hop would double a snapshot load."""
PROBE_AFTER = 5.0
"""A write path that committed this recently needs no probe."""


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        create_schema(conn)
    finally:
        conn.close()


class SQLiteEventStore(SQLEventStore):
    """The embedded event store. Build it with `await SQLiteEventStore.open(data_dir)`."""

    reads: ClassVar[SQLReads] = reads
    operations: ClassVar[SQLOperations] = operations
    page_size = 500
    live_page_size = INLINE_READ_LIMIT
    """A live subscriber reads what the last commit brought on the event loop: in a reader
    thread, each of the read's SQLite calls takes the GIL back from the busy loop (futex round
    trips on both sides). strace of `orders serve` at 200 commands/s: 20 futex calls a command
    with those reads in threads, 8.5 on the loop, 5.5 without projectors."""

    def __init__(
        self,
        path: Path,
        writer: GroupCommitWriter | None,
        pool: ReaderPool,
        notifier: HeadNotifier,
        lock: DataDirLock | None = None,
    ) -> None:
        super().__init__(notifier)
        self.path = path
        self._writer = writer
        self._pool = pool
        self._lock = lock
        self._persistent: EmbeddedPersistentSubscriptions | None = None

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

    # -- the dialect: reads in reader threads, writes through the group-commit thread ------

    async def _run(self, read: Read) -> Any:
        self._check_open()
        return await self._pool.run(read)

    async def _run_small(self, read: Read) -> Any:
        self._check_open()
        return self._pool.run_here(read)

    def _writable(self) -> GroupCommitWriter:
        self._check_open()
        if self._writer is None:
            raise StoreUnavailable("the event store was opened read-only")
        return self._writer

    async def _submit(self, write: Callable[..., Any]) -> Any:
        return await self._writable().submit(write)

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        """Append atomically once durable; idempotent for the same ids at the same expectation.
        Any stream name is accepted, `$`-prefixed system streams included.

        Bounded by STORE_TIMEOUT like every call on a request's path, by the writer's own
        deadline watch rather than `eventstore.deadline.bounded`: a timer armed and cancelled
        per append cost about a tenth of a lone caller's command on the event loop."""
        self._check_open()
        return await self._append(stream, tuple(events), expected)

    async def _append(
        self, stream: str, events: tuple[NewEvent, ...], expected: ExpectedVersion
    ) -> AppendResult:
        result: AppendResult = await self._writable().submit(
            partial(operations.append, stream=stream, events=events, expected=expected),
            give_up_after=self.call_timeout,
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

    async def read_from_mark(self, mark_stream: str, stream: str, *, limit: int) -> MarkedRead:
        """The mark and the events it points to in one read (see `MarkedReads`): on the event
        loop up to `INLINE_READ_LIMIT` events, else in one hop to a reader within STORE_TIMEOUT.
        The read on the loop has no deadline: it never waits on the loop, so there is nothing a
        timer could end (arming one was a tenth of a snapshot load)."""
        self._check_open()
        read = partial(reads.read_from_mark, mark_stream=mark_stream, stream=stream, limit=limit)
        if limit <= INLINE_READ_LIMIT:
            marked: MarkedRead = self._pool.run_here(read)
            return marked
        return await self._read_in_reader(read)

    @bounded
    async def _read_in_reader(self, read: Read) -> MarkedRead:
        marked: MarkedRead = await self._pool.run(read)
        return marked

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
