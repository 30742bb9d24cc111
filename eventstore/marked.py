"""Reading a stream from where the newest event of another stream (its mark) points: an order
from its newest snapshot, say. The mark names that version in its metadata (`MARKED_VERSION`), so
the store needs nothing from the reader but the two stream names: plain data in, plain data out.

Adapters that can (`MarkedReads`) do both reads in one: one hop to the reader and one consistent
view of the log. For the others the two reads are composed here, with the same result on a log
that does not change between them.
"""

from __future__ import annotations

from typing import Protocol

import orjson

from eventstore.port import (
    MARKED_VERSION,
    EventStore,
    MarkedRead,
    MarkedReads,
    RecordedEvent,
    StreamDeleted,
)


class StreamReader(Protocol):
    """A store's own synchronous stream read (an adapter's, inside its read transaction)."""

    def __call__(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]: ...


def marked_version(mark: RecordedEvent | None) -> int | None:
    """Where the events after `mark` start: 1 without a mark, the version its metadata names,
    None when it names none (a mark written before marks named versions, or not JSON)."""
    if mark is None:
        return 1
    try:
        metadata = orjson.loads(mark.metadata)
    except orjson.JSONDecodeError:
        return None
    version = metadata.get(MARKED_VERSION) if isinstance(metadata, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return None
    return version


def read_marked(read: StreamReader, mark_stream: str, stream: str, *, limit: int) -> MarkedRead:
    """The marked read made of an adapter's own stream reads, for adapters that run both in
    one transaction or at one moment (`MarkedReads`)."""
    try:
        marks = read(mark_stream, backwards=True, limit=1)
    except StreamDeleted:
        marks = []  # a deleted mark stream is no mark
    mark = marks[0] if marks else None
    from_version = marked_version(mark)
    if from_version is None:
        return MarkedRead(mark=mark, from_version=None, events=[])
    events = read(stream, from_version=from_version, limit=limit)
    return MarkedRead(mark=mark, from_version=from_version, events=events)


async def read_from_mark(
    store: EventStore, mark_stream: str, stream: str, *, limit: int
) -> MarkedRead:
    """The newest readable event of `mark_stream` and up to `limit` events of `stream` from the
    version it names (see `MarkedRead`)."""
    if isinstance(store, MarkedReads):
        return await store.read_from_mark(mark_stream, stream, limit=limit)
    try:
        marks = await store.read_stream(mark_stream, backwards=True, limit=1)
    except StreamDeleted:
        marks = []
    mark = marks[0] if marks else None
    from_version = marked_version(mark)
    if from_version is None:
        return MarkedRead(mark=mark, from_version=None, events=[])
    events = await store.read_stream(stream, from_version=from_version, limit=limit)
    return MarkedRead(mark=mark, from_version=from_version, events=events)
