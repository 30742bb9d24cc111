"""`InMemoryEventStore`: the `EventStore` port over Python lists, for tests that must be fast.

It keeps the log's rules exactly as the SQL stores do (`eventstore.streams`: expectations,
idempotent retries, `$tb` soft deletes, `$maxCount`, tombstones, metadata in `$$<stream>`), so it
passes the same contract suite; it does no I/O and keeps nothing across processes. Every call
completes on the event loop, yielding once to the other tasks, so a test on it runs in
microseconds a command.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import orjson

from eventstore.catchup import catch_up_all, catch_up_stream
from eventstore.marked import read_marked
from eventstore.memory.groups import MemoryGroupStorage
from eventstore.memory.log import MemoryLog
from eventstore.notify import HeadNotifier
from eventstore.persistent.groups import PersistentGroups
from eventstore.port import (
    ANY,
    AppendResult,
    EventFilter,
    ExpectedVersion,
    MarkedRead,
    NewEvent,
    RecordedEvent,
    StoreUnavailable,
    StreamDeleted,
    SubscriptionGroups,
)
from eventstore.streams import METADATA_EVENT_TYPE, metastream_of

PAGE = 500
"""Events a catch-up subscription takes per round."""


class InMemoryEventStore:
    """The log in memory. `await InMemoryEventStore.open()` gives a ready one (groups running),
    as does `async with InMemoryEventStore() as store` (closed on exit)."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._notifier = HeadNotifier()
        self._log = MemoryLog(clock or (lambda: datetime.now(UTC)), self._notifier.notify)
        self._groups = PersistentGroups(self, MemoryGroupStorage())
        self._closed = False

    @classmethod
    async def open(cls) -> InMemoryEventStore:
        """An empty store with its persistent-subscription groups started."""
        store = cls()
        await store._groups.start()
        return store

    async def __aenter__(self) -> InMemoryEventStore:
        await self._groups.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the event store is closed")

    async def _turn(self) -> None:
        # Every call lets the other tasks run once, as a store's I/O would: concurrent commands
        # and background work (snapshots, groups) interleave as they do on a real store.
        await asyncio.sleep(0)
        self._check_open()

    # -- writes -------------------------------------------------------------------------------

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        """Append atomically; idempotent for the same ids at the same expectation."""
        await self._turn()
        return self._log.append(stream, tuple(events), expected)

    async def delete_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Soft delete: `$tb` hides every event so far; appending again resumes numbering."""
        await self._turn()
        self._log.delete(stream, expected)

    async def tombstone_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Hard delete: every later read or append of the stream raises `StreamDeleted`."""
        await self._turn()
        self._log.tombstone(stream, expected)

    async def set_stream_metadata(
        self, stream: str, metadata: dict[str, object], expected: ExpectedVersion = ANY
    ) -> None:
        """Replace the metadata; `expected` is about the metastream, as on EventStoreDB."""
        event = NewEvent(id=uuid.uuid4(), type=METADATA_EVENT_TYPE, data=orjson.dumps(metadata))
        await self.append(metastream_of(stream), [event], expected)

    # -- reads --------------------------------------------------------------------------------

    async def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Readable events of one stream (`$maxCount` and `$tb` honoured); missing: []."""
        await self._turn()
        return self._log.read_stream(
            stream, from_version=from_version, backwards=backwards, limit=limit
        )

    async def read_from_mark(self, mark_stream: str, stream: str, *, limit: int) -> MarkedRead:
        """The mark and the events it points to, read at one moment (see `MarkedReads`)."""
        await self._turn()
        return read_marked(self._log.read_stream, mark_stream, stream, limit=limit)

    async def read_all(
        self,
        *,
        from_position: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
        filter: EventFilter | None = None,
    ) -> list[RecordedEvent]:
        """Events of the global log from `from_position` (inclusive), filtered."""
        await self._turn()
        return self._log.read_all(
            from_position=from_position, backwards=backwards, limit=limit, filter=filter
        )

    async def head_position(self) -> int:
        """The newest event's position, 0 when the log is empty."""
        await self._turn()
        return self._log.head_position

    async def get_stream_metadata(self, stream: str) -> dict[str, object]:
        """The newest metadata of `stream`, empty when none was set."""
        await self._turn()
        if self._log.head(stream).tombstoned:
            raise StreamDeleted(stream)
        return self._log.metadata(stream)

    def subscribe_stream(
        self, stream: str, *, after_version: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Catch-up subscription to one stream after `after_version` (exclusive), then live."""
        self._check_open()

        async def page(from_version: int) -> list[RecordedEvent]:
            self._check_open()
            return self._log.read_stream(stream, from_version=from_version, limit=PAGE)

        return catch_up_stream(page, self._notifier, after_version=after_version)

    def subscribe_all(
        self, *, after_position: int | None = None, filter: EventFilter | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Catch-up subscription to the global log after `after_position` (exclusive), then
        live."""
        self._check_open()
        selection = filter or EventFilter()

        async def page(after: int) -> tuple[list[RecordedEvent], int]:
            self._check_open()
            found = self._log.read_all(from_position=after + 1, limit=PAGE, filter=selection)
            if len(found) == PAGE:
                return found, found[-1].position
            return found, max(after, self._log.head_position)

        return catch_up_all(page, self._notifier, after_position=after_position)

    @property
    def live_waiters(self) -> int:
        """Subscribers currently waiting for the next commit (0 once all are closed)."""
        return self._notifier.waiting

    # -- persistent subscriptions and lifecycle ----------------------------------------------

    @property
    def groups(self) -> SubscriptionGroups:
        """The store's persistent-subscription groups (`eventstore.persistent`)."""
        self._check_open()
        return self._groups

    async def close(self) -> None:
        """Stop the groups and end live subscriptions (they raise `SubscriptionDropped`)."""
        if self._closed:
            return
        await self._groups.close()
        self._closed = True
        self._notifier.notify()
