"""The log the in-memory store keeps: streams and the global log in lists, with the rules every
store of the log keeps (`eventstore.streams`: expectations, idempotent retries, `$tb` soft
deletes, `$maxCount`, tombstones, metadata in `$$<stream>`), as the SQL stores apply them.
Synchronous: `InMemoryEventStore` is the port around it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from eventstore.port import (
    ANY,
    EXISTS,
    NO_STREAM,
    AppendResult,
    EventFilter,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamDeleted,
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


class MemoryLog:
    """Every stream and the global log; `on_commit` is called after each write."""

    def __init__(self, clock: Callable[[], datetime], on_commit: Callable[[], None]) -> None:
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, _Stream] = {}
        self._clock = clock
        self._on_commit = on_commit

    def tombstoned(self, stream: str) -> bool:
        names = [stream]
        if is_metastream(stream):
            names.append(stream[len(METASTREAM_PREFIX) :])
        return any((s := self._streams.get(name)) is not None and s.tombstoned for name in names)

    def metadata(self, stream: str) -> dict[str, Any]:
        meta = self._streams.get(metastream_of(stream))
        if meta is None or not meta.events:
            return {}
        return metadata_object(meta.events[-1].data)

    def head(self, stream: str) -> StreamHead:
        held = self._streams.get(stream)
        version, tombstoned = (held.version, held.tombstoned) if held else (0, False)
        if is_metastream(stream):
            return StreamHead(
                name=stream, version=version, tombstoned=tombstoned, max_count=METASTREAM_MAX_COUNT
            )
        metadata = self.metadata(stream) if version > 0 else {}
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

    def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        if self.tombstoned(stream):
            raise StreamDeleted(stream)
        head = self.head(stream)
        original = self._check_expected(head, expected, events)
        if original is not None:
            return original
        if not events:
            held = self._streams.get(stream)
            position = held.events[head.version - 1].position if held and head.version else 0
            return AppendResult(version=head.version, position=position)
        position = self._insert(stream, events)
        self._streams[stream].version = head.version + len(events)
        self._on_commit()
        return AppendResult(version=head.version + len(events), position=position)

    def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        head = self.head(stream)
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

    def read_all(
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

    def delete(self, stream: str, expected: ExpectedVersion) -> None:
        """Soft delete: `$tb` hides every event so far; appending again resumes numbering."""
        if self.tombstoned(stream):
            raise StreamDeleted(stream)
        head = self.head(stream)
        if head.version == 0:
            raise WrongExpectedVersion(stream, expected, None)
        self._check_expected(head, expected, ())
        metadata = {**self.metadata(stream), TRUNCATE_BEFORE: head.version}
        event = NewEvent(id=uuid.uuid4(), type=METADATA_EVENT_TYPE, data=orjson.dumps(metadata))
        self.append(metastream_of(stream), [event], ANY)

    def tombstone(self, stream: str, expected: ExpectedVersion) -> None:
        """Hard delete: every later read or append of the stream raises `StreamDeleted`."""
        if self.tombstoned(stream):
            raise StreamDeleted(stream)
        head = self.head(stream)
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
        self._on_commit()

    @property
    def head_position(self) -> int:
        """The newest event's position, 0 when the log is empty."""
        return len(self._log)
