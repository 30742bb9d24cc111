"""Reading a stream from where the newest event of another stream (its mark) points: an order
from its newest snapshot, say.

Adapters that can (`MarkedReads`) do both reads in one: one hop to the reader and one consistent
view of the log. For the others the two reads are composed here, with the same result on a log
that does not change between them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from eventstore.port import EventStore, MarkedReads, RecordedEvent, StreamDeleted

T = TypeVar("T")


async def read_from_mark(
    store: EventStore,
    mark_stream: str,
    stream: str,
    start: Callable[[RecordedEvent | None], tuple[T, int]],
    *,
    limit: int,
) -> tuple[T, list[RecordedEvent]]:
    """`start` turns the newest readable event of `mark_stream` (None: none, or deleted) into a
    value and the version of `stream` to read from; returns the value and up to `limit` events of
    `stream` from that version."""
    if isinstance(store, MarkedReads):
        return await store.read_from_mark(mark_stream, stream, start, limit=limit)
    try:
        marks = await store.read_stream(mark_stream, backwards=True, limit=1)
    except StreamDeleted:
        marks = []
    value, from_version = start(marks[0] if marks else None)
    return value, await store.read_stream(stream, from_version=from_version, limit=limit)
