"""Contract: reading a stream from where another stream's newest event (its mark) points, in one
read where the adapter can (`MarkedReads`), composed of two reads where it cannot."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from eventstore.marked import read_from_mark
from eventstore.port import ANY, NO_STREAM, EventStore, RecordedEvent, StreamDeleted
from tests.contract.conftest import new_events, unique_stream


def from_mark(
    seen: list[RecordedEvent | None],
) -> Callable[[RecordedEvent | None], tuple[str, int]]:
    """A `start` that records the mark it was given and reads from the mark's version."""

    def start(mark: RecordedEvent | None) -> tuple[str, int]:
        seen.append(mark)
        return ("marked" if mark else "unmarked"), 1 if mark is None else mark.version

    return start


async def test_without_a_mark_the_read_starts_where_start_says(store: EventStore) -> None:
    stream, marks = unique_stream(), unique_stream("mark")
    await store.append(stream, new_events(5), NO_STREAM)
    seen: list[RecordedEvent | None] = []
    value, events = await read_from_mark(store, marks, stream, from_mark(seen), limit=3)
    assert seen == [None]
    assert value == "unmarked"
    assert [e.version for e in events] == [1, 2, 3]


async def test_the_newest_mark_points_into_the_stream(store: EventStore) -> None:
    stream, marks = unique_stream(), unique_stream("mark")
    await store.append(stream, new_events(10), NO_STREAM)
    await store.append(marks, new_events(4), NO_STREAM)
    seen: list[RecordedEvent | None] = []
    value, events = await read_from_mark(store, marks, stream, from_mark(seen), limit=100)
    assert [mark.version for mark in seen if mark] == [4]
    assert value == "marked"
    assert [e.version for e in events] == list(range(4, 11))


async def test_a_deleted_mark_stream_reads_as_no_mark(store: EventStore) -> None:
    stream, marks = unique_stream(), unique_stream("mark")
    await store.append(stream, new_events(3), NO_STREAM)
    await store.append(marks, new_events(2), NO_STREAM)
    await store.tombstone_stream(marks, ANY)
    seen: list[RecordedEvent | None] = []
    _, events = await read_from_mark(store, marks, stream, from_mark(seen), limit=100)
    assert seen == [None]
    assert [e.version for e in events] == [1, 2, 3]


async def test_a_deleted_stream_is_not_read_from_a_mark(store: EventStore) -> None:
    stream, marks = unique_stream(), unique_stream("mark")
    await store.append(stream, new_events(3), NO_STREAM)
    await store.append(marks, new_events(1), NO_STREAM)
    await store.tombstone_stream(stream, ANY)
    with pytest.raises(StreamDeleted):
        await read_from_mark(store, marks, stream, from_mark([]), limit=100)
