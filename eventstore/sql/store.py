"""`SQLEventStore`: the `EventStore` port over a SQL log, for the embedded and PostgreSQL stores.

The port's calls are the same on both: a read is one of the dialect's `reads` functions run on a
connection (`_run`), a delete one of its `operations` through its writer (`_submit`), a catch-up
subscription `eventstore.catchup`'s rounds over pages read that way, woken by the head notifier.
What each store does its own way stays in its subclass: connections, the writer and how an
append reaches it, notification, opening and closing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any, ClassVar, Protocol

import orjson

from eventstore.catchup import catch_up_all, catch_up_stream
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
from eventstore.streams import METADATA_EVENT_TYPE, metastream_of

Read = Callable[[Any], Any]
"""A dialect's read given its connection: the result, or (PostgreSQL) an awaitable of it."""


class SQLReads(Protocol):
    """A dialect's read queries (a module), each taking a connection first."""

    @property
    def read_stream(self) -> Callable[..., Any]: ...
    @property
    def read_all(self) -> Callable[..., Any]: ...
    @property
    def scan_all(self) -> Callable[..., Any]: ...
    @property
    def head_position(self) -> Callable[..., Any]: ...
    @property
    def stream_metadata(self) -> Callable[..., Any]: ...


class SQLOperations(Protocol):
    """A dialect's deletes (a module), each a write its writer commits."""

    @property
    def delete(self) -> Callable[..., Any]: ...
    @property
    def tombstone(self) -> Callable[..., Any]: ...


class SQLEventStore:
    """The port's calls over a dialect; a subclass supplies `_run`, `_submit`, `_append` and
    `groups`, and opens and closes itself."""

    call_timeout: float = DEFAULT_STORE_TIMEOUT
    """STORE_TIMEOUT: seconds each call on a request's path may take (`eventstore.deadline`)."""

    reads: ClassVar[SQLReads]
    operations: ClassVar[SQLOperations]
    page_size: ClassVar[int]
    """Events a catch-up subscription reads at a time."""
    live_page_size: ClassVar[int | None] = None
    """Events a live subscription (its last page was not full) reads at a time through
    `_run_small`; None: every page is `page_size` through `_run`."""

    def __init__(self, notifier: HeadNotifier) -> None:
        self._notifier = notifier
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the event store is closed")

    # -- the dialect ------------------------------------------------------------------------

    async def _run(self, read: Read) -> Any:
        """Run `read` on a connection; an outage raises `StoreUnavailable`."""
        raise NotImplementedError

    async def _run_small(self, read: Read) -> Any:
        """Run a read of at most `live_page_size` events (by default as `_run` does)."""
        return await self._run(read)

    async def _submit(self, write: Callable[..., Any]) -> Any:
        """Commit `write` (one of `operations`) through the writer."""
        raise NotImplementedError

    async def _append(
        self, stream: str, events: tuple[NewEvent, ...], expected: ExpectedVersion
    ) -> AppendResult:
        """Append through the writer."""
        raise NotImplementedError

    @property
    def groups(self) -> SubscriptionGroups:
        """The store's persistent-subscription groups (`eventstore.persistent`)."""
        raise NotImplementedError

    # -- writes ----------------------------------------------------------------------------

    @bounded
    async def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        """Append atomically once durable; idempotent for the same ids at the same expectation.
        Any stream name is accepted, `$`-prefixed system streams included."""
        self._check_open()
        return await self._append(stream, tuple(events), expected)

    @bounded
    async def delete_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Soft delete: `$tb` metadata hides every event so far; appending again resumes."""
        self._check_open()
        await self._submit(
            partial(self.operations.delete, stream=stream, expected=expected, event_id=uuid.uuid4())
        )

    @bounded
    async def tombstone_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Hard delete: every later read or append of the stream raises `StreamDeleted`."""
        self._check_open()
        await self._submit(
            partial(
                self.operations.tombstone, stream=stream, expected=expected, event_id=uuid.uuid4()
            )
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
        events: list[RecordedEvent] = await self._run(
            partial(
                self.reads.read_stream,
                stream=stream,
                from_version=from_version,
                backwards=backwards,
                limit=limit,
            )
        )
        return events

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
        events: list[RecordedEvent] = await self._run(
            partial(
                self.reads.read_all,
                from_position=from_position,
                backwards=backwards,
                limit=limit,
                filter=filter,
            )
        )
        return events

    @bounded
    async def head_position(self) -> int:
        """The newest event's position, 0 when the log is empty."""
        position: int = await self._run(self.reads.head_position)
        return position

    @bounded
    async def get_stream_metadata(self, stream: str) -> dict[str, object]:
        """The newest metadata of `stream`, empty when none was set."""
        metadata: dict[str, object] = await self._run(
            partial(self.reads.stream_metadata, stream=stream)
        )
        return metadata

    # -- catch-up subscriptions ------------------------------------------------------------

    def subscribe_stream(
        self, stream: str, *, after_version: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Catch-up subscription to one stream after `after_version` (exclusive), then live."""
        self._check_open()
        read_stream, limit = self.reads.read_stream, self.page_size

        async def page(from_version: int) -> list[RecordedEvent]:
            events: list[RecordedEvent] = await self._run(
                partial(read_stream, stream=stream, from_version=from_version, limit=limit)
            )
            return events

        return catch_up_stream(page, self._notifier, after_version=after_version)

    def subscribe_all(
        self, *, after_position: int | None = None, filter: EventFilter | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Catch-up subscription to the global log after `after_position` (exclusive) that
        `filter` selects, then live."""
        self._check_open()
        scan_all, limit, selection = self.reads.scan_all, self.page_size, filter or EventFilter()
        small = self.live_page_size
        live = False  # the last page was not full: what follows is what commits bring

        async def page(after: int) -> tuple[list[RecordedEvent], int]:
            nonlocal live
            size, run = (
                (small, self._run_small) if live and small is not None else (limit, self._run)
            )
            scanned: tuple[list[RecordedEvent], int] = await run(
                partial(scan_all, after=after, limit=size, filter=selection)
            )
            live = len(scanned[0]) < size
            return scanned

        return catch_up_all(page, self._notifier, after_position=after_position)

    @property
    def live_waiters(self) -> int:
        """Subscribers currently waiting for the next commit (0 once all are closed)."""
        return self._notifier.waiting
