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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from eventstore.catchup import catch_up_all, catch_up_stream
from eventstore.memory.groups import MemoryGroupStorage
from eventstore.notify import HeadNotifier
from eventstore.persistent.groups import PersistentGroups
from eventstore.port import (
    ANY,
    EXISTS,
    NO_STREAM,
    AppendResult,
    EventFilter,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StoreUnavailable,
    StreamDeleted,
    SubscriptionGroups,
    WrongExpectedVersion,
)
from eventstore.streams import (
    MAX_COUNT,
    METADATA_EVENT_TYPE,
    METASTREAM_MAX_COUNT,
    METASTREAM_PREFIX,
    TOMBSTONE_EVENT_TYPE,
    TRUNCATE_BEFORE,
    StreamHead,
    is_metastream,
    metadata_count,
    metadata_object,
    metastream_of,
)

T = TypeVar("T")

PAGE = 500
"""Events a catch-up subscription takes per round."""


@dataclass(slots=True)
class _Stream:
    """One stream's events (index = version - 1, the tombstone marker included) and state."""

    events: list[RecordedEvent]
    version: int = 0
    tombstoned: bool = False


def _hidden_from_all(event: RecordedEvent) -> bool:
    # EventStoreDB never shows a group's parked or checkpoint streams in `$all`.
    stream = event.stream
    return stream.startswith("$persistentsubscription-") and stream.endswith(
        ("-parked", "-checkpoint")
    )


class InMemoryEventStore:
    """The log in memory. `await InMemoryEventStore.open()` gives a ready one (groups running),
    as does `async with InMemoryEventStore() as store` (closed on exit)."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, _Stream] = {}
        self._notifier = HeadNotifier()
        self._clock = clock or (lambda: datetime.now(UTC))
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

    # -- the log's rules ----------------------------------------------------------------------

    def _tombstoned(self, stream: str) -> bool:
        names = [stream]
        if is_metastream(stream):
            names.append(stream[len(METASTREAM_PREFIX) :])
        return any((s := self._streams.get(name)) is not None and s.tombstoned for name in names)

    def _metadata(self, stream: str) -> dict[str, Any]:
        meta = self._streams.get(metastream_of(stream))
        if meta is None or not meta.events:
            return {}
        return metadata_object(meta.events[-1].data)

    def _head(self, stream: str) -> StreamHead:
        held = self._streams.get(stream)
        version, tombstoned = (held.version, held.tombstoned) if held else (0, False)
        if is_metastream(stream):
            return StreamHead(
                name=stream, version=version, tombstoned=tombstoned, max_count=METASTREAM_MAX_COUNT
            )
        metadata = self._metadata(stream) if version > 0 else {}
        return StreamHead(
            name=stream,
            version=version,
            tombstoned=tombstoned,
            truncate_before=metadata_count(metadata.get(TRUNCATE_BEFORE)),
            max_count=metadata_count(metadata.get(MAX_COUNT)),
        )

    def _retry_of(self, stream: str, base: int, events: Sequence[NewEvent]) -> AppendResult | None:
        """The original result when `events` already sit at versions base+1..base+n."""
        held = self._streams.get(stream)
        stored = [] if held is None else held.events[base : base + len(events)]
        if len(stored) != len(events) or any(
            s.id != e.id for s, e in zip(stored, events, strict=True)
        ):
            return None
        return AppendResult(version=base + len(events), position=stored[-1].position)

    def _ids_already_in(self, stream: str, events: Sequence[NewEvent]) -> AppendResult | None:
        """Best-effort idempotence for ANY/EXISTS: every id is in the stream already."""
        held = self._streams.get(stream)
        found = {} if held is None else {e.id: e for e in held.events}
        if any(event.id not in found for event in events):
            return None
        last = found[events[-1].id]
        return AppendResult(version=last.version, position=last.position)

    def _check_expected(
        self, head: StreamHead, expected: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult | None:
        """None: the write may go ahead; the original result of a retry; else raises."""
        actual = head.version if head.exists else None
        if isinstance(expected, int):
            if expected < 1:
                raise ValueError(f"an exact expected version is >= 1, got {expected}")
            if head.version == expected:
                return None
            if head.version > expected and events:
                original = self._retry_of(head.name, expected, events)
                if original is not None:
                    return original
            raise WrongExpectedVersion(head.name, expected, actual)
        if expected is NO_STREAM:
            if not head.exists:
                return None
            if events:
                # A stream re-created after a soft delete started numbering after `$tb`.
                for base in sorted({0, min(head.truncate_before or 0, head.version)}):
                    original = self._retry_of(head.name, base, events)
                    if original is not None:
                        return original
            raise WrongExpectedVersion(head.name, expected, actual)
        if events and head.version > 0:
            original = self._ids_already_in(head.name, events)
            if original is not None:
                return original
        if expected is EXISTS and not head.exists:
            raise WrongExpectedVersion(head.name, expected, None)
        return None

    def _insert(self, stream: str, events: Sequence[NewEvent]) -> int:
        """Record `events` after the stream's last one; the last one's position."""
        held = self._streams.setdefault(stream, _Stream(events=[]))
        recorded_at = self._clock()
        for event in events:
            recorded = RecordedEvent(
                id=event.id,
                stream=stream,
                type=event.type,
                version=len(held.events) + 1,
                position=len(self._log) + 1,
                data=event.data,
                metadata=event.metadata,
                recorded_at=recorded_at,
                content_type=event.content_type,
            )
            held.events.append(recorded)
            self._log.append(recorded)
        return len(self._log)

    def _append_now(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        if self._tombstoned(stream):
            raise StreamDeleted(stream)
        head = self._head(stream)
        original = self._check_expected(head, expected, events)
        if original is not None:
            return original
        if not events:
            held = self._streams.get(stream)
            position = held.events[head.version - 1].position if held and head.version else 0
            return AppendResult(version=head.version, position=position)
        position = self._insert(stream, events)
        self._streams[stream].version = head.version + len(events)
        self._notifier.notify()
        return AppendResult(version=head.version + len(events), position=position)

    # -- writes -------------------------------------------------------------------------------

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        """Append atomically; idempotent for the same ids at the same expectation."""
        await self._turn()
        return self._append_now(stream, tuple(events), expected)

    async def delete_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Soft delete: `$tb` hides every event so far; appending again resumes numbering."""
        await self._turn()
        if self._tombstoned(stream):
            raise StreamDeleted(stream)
        head = self._head(stream)
        if head.version == 0:
            raise WrongExpectedVersion(stream, expected, None)
        self._check_expected(head, expected, ())
        metadata = {**self._metadata(stream), TRUNCATE_BEFORE: head.version}
        event = NewEvent(id=uuid.uuid4(), type=METADATA_EVENT_TYPE, data=orjson.dumps(metadata))
        self._append_now(metastream_of(stream), [event], ANY)

    async def tombstone_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Hard delete: every later read or append of the stream raises `StreamDeleted`."""
        await self._turn()
        if self._tombstoned(stream):
            raise StreamDeleted(stream)
        head = self._head(stream)
        self._check_expected(head, expected, ())
        marker = NewEvent(
            id=uuid.uuid4(),
            type=TOMBSTONE_EVENT_TYPE,
            data=b"",
            metadata=b"",
            content_type="application/octet-stream",
        )
        self._insert(stream, [marker])
        held = self._streams[stream]
        held.version, held.tombstoned = head.version, True
        self._notifier.notify()

    async def set_stream_metadata(
        self, stream: str, metadata: dict[str, object], expected: ExpectedVersion = ANY
    ) -> None:
        """Replace the metadata; `expected` is about the metastream, as on EventStoreDB."""
        event = NewEvent(id=uuid.uuid4(), type=METADATA_EVENT_TYPE, data=orjson.dumps(metadata))
        await self.append(metastream_of(stream), [event], expected)

    # -- reads --------------------------------------------------------------------------------

    def _read_stream_now(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        head = self._head(stream)
        if head.tombstoned:
            raise StreamDeleted(stream)
        held = self._streams.get(stream)
        if held is None:
            return []
        first = head.first_readable
        count = head.version if limit is None else max(limit, 0)
        if backwards:
            start = head.version if from_version is None else min(from_version, head.version)
            stop = max(first, start - count + 1)
            return held.events[stop - 1 : start][::-1] if start >= stop else []
        start = first if from_version is None else max(from_version, first)
        stop = min(head.version, start + count - 1)
        return held.events[start - 1 : stop] if stop >= start else []

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
        return self._read_stream_now(
            stream, from_version=from_version, backwards=backwards, limit=limit
        )

    async def read_from_mark(
        self,
        mark_stream: str,
        stream: str,
        start: Callable[[RecordedEvent | None], tuple[T, int]],
        *,
        limit: int,
    ) -> tuple[T, list[RecordedEvent]]:
        """The mark and the events it points to, read at one moment (see `MarkedReads`)."""
        await self._turn()
        try:
            marks = self._read_stream_now(mark_stream, backwards=True, limit=1)
        except StreamDeleted:
            marks = []
        value, from_version = start(marks[0] if marks else None)
        return value, self._read_stream_now(stream, from_version=from_version, limit=limit)

    def _read_all_now(
        self,
        *,
        from_position: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
        filter: EventFilter | None = None,
    ) -> list[RecordedEvent]:
        selection = filter or EventFilter()
        if backwards:
            last = len(self._log) if from_position is None else min(from_position, len(self._log))
            candidates = reversed(self._log[: max(last, 0)])
        else:
            candidates = iter(self._log[max((from_position or 1) - 1, 0) :])
        wanted = len(self._log) if limit is None else max(limit, 0)
        found: list[RecordedEvent] = []
        for event in candidates:
            if len(found) >= wanted:
                break
            if selection.matches(event) and not _hidden_from_all(event):
                found.append(event)
        return found

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
        return self._read_all_now(
            from_position=from_position, backwards=backwards, limit=limit, filter=filter
        )

    async def head_position(self) -> int:
        """The newest event's position, 0 when the log is empty."""
        await self._turn()
        return len(self._log)

    async def get_stream_metadata(self, stream: str) -> dict[str, object]:
        """The newest metadata of `stream`, empty when none was set."""
        await self._turn()
        if self._head(stream).tombstoned:
            raise StreamDeleted(stream)
        return self._metadata(stream)

    def subscribe_stream(
        self, stream: str, *, after_version: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Catch-up subscription to one stream after `after_version` (exclusive), then live."""
        self._check_open()

        async def page(from_version: int) -> list[RecordedEvent]:
            self._check_open()
            return self._read_stream_now(stream, from_version=from_version, limit=PAGE)

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
            found = self._read_all_now(from_position=after + 1, limit=PAGE, filter=selection)
            if len(found) == PAGE:
                return found, found[-1].position
            return found, max(after, len(self._log))

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
