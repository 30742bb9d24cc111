"""Contract: reading a stream from where another stream's newest event (its mark) points, in one
read where the adapter can (`MarkedReads`), composed of two reads where it cannot. The mark names
the version in its metadata (`MARKED_VERSION`): plain data in, plain data out."""

from __future__ import annotations

import uuid

import orjson
import pytest

from eventstore.marked import read_from_mark
from eventstore.port import ANY, MARKED_VERSION, NO_STREAM, EventStore, NewEvent, StreamDeleted
from tests.contract.conftest import new_events, unique_stream


def mark(metadata: object) -> NewEvent:
    """A mark event whose metadata is `metadata`, as JSON."""
    return NewEvent(id=uuid.uuid4(), type="Marked", data=b"{}", metadata=orjson.dumps(metadata))


def pointing_to(version: int) -> NewEvent:
    return mark({"snapshotOf": "the stream", MARKED_VERSION: version})


async def test_without_a_mark_the_stream_is_read_from_its_start(store: EventStore) -> None:
    stream, marks = unique_stream(), unique_stream("mark")
    await store.append(stream, new_events(5), NO_STREAM)
    read = await read_from_mark(store, marks, stream, limit=3)
    assert read.mark is None
    assert read.from_version == 1
    assert [e.version for e in read.events] == [1, 2, 3]


@pytest.mark.parametrize("limit", [3, 100])  # the embedded store reads up to 64 on the loop
async def test_the_newest_mark_names_where_the_events_start(store: EventStore, limit: int) -> None:
    stream, marks = unique_stream(), unique_stream("mark")
    await store.append(stream, new_events(10), NO_STREAM)
    await store.append(marks, [pointing_to(2), pointing_to(7)], NO_STREAM)
    read = await read_from_mark(store, marks, stream, limit=limit)
    assert read.mark is not None
    assert read.mark.version == 2
    assert orjson.loads(read.mark.metadata)[MARKED_VERSION] == 7
    assert read.from_version == 7
    assert [e.version for e in read.events] == list(range(7, 11))[:limit]


async def test_a_mark_past_the_head_reads_no_events(store: EventStore) -> None:
    stream, marks = unique_stream(), unique_stream("mark")
    await store.append(stream, new_events(3), NO_STREAM)
    await store.append(marks, [pointing_to(9)], NO_STREAM)
    read = await read_from_mark(store, marks, stream, limit=100)
    assert read.from_version == 9
    assert read.events == []


@pytest.mark.parametrize(
    "metadata",
    [
        {"snapshotOf": "the stream"},
        {MARKED_VERSION: "4"},
        {MARKED_VERSION: 0},
        {MARKED_VERSION: True},
        [4],
    ],
)
async def test_a_mark_naming_no_version_is_returned_without_events(
    store: EventStore, metadata: object
) -> None:
    # Marks written before marks named versions: the reader reads the events itself.
    stream, marks = unique_stream(), unique_stream("mark")
    await store.append(stream, new_events(5), NO_STREAM)
    await store.append(marks, [mark(metadata)], NO_STREAM)
    read = await read_from_mark(store, marks, stream, limit=100)
    assert read.mark is not None
    assert orjson.loads(read.mark.metadata) == metadata
    assert read.from_version is None
    assert read.events == []


async def test_a_deleted_mark_stream_reads_as_no_mark(store: EventStore) -> None:
    stream, marks = unique_stream(), unique_stream("mark")
    await store.append(stream, new_events(3), NO_STREAM)
    await store.append(marks, [pointing_to(2)], NO_STREAM)
    await store.tombstone_stream(marks, ANY)
    read = await read_from_mark(store, marks, stream, limit=100)
    assert read.mark is None
    assert read.from_version == 1
    assert [e.version for e in read.events] == [1, 2, 3]


async def test_a_deleted_stream_is_not_read_from_a_mark(store: EventStore) -> None:
    stream, marks = unique_stream(), unique_stream("mark")
    await store.append(stream, new_events(3), NO_STREAM)
    await store.append(marks, [pointing_to(1)], NO_STREAM)
    await store.tombstone_stream(stream, ANY)
    with pytest.raises(StreamDeleted):
        await read_from_mark(store, marks, stream, limit=100)
