"""Contract: stream metadata (`$maxCount`, `$tb`), soft delete and tombstone."""

from __future__ import annotations

import pytest

from eventstore.port import (
    ANY,
    NO_STREAM,
    EventFilter,
    EventStore,
    StreamDeleted,
    WrongExpectedVersion,
)
from tests.contract.conftest import new_events, unique_stream


async def versions(store: EventStore, stream: str, **options: object) -> list[int]:
    return [e.version for e in await store.read_stream(stream, **options)]  # type: ignore[arg-type]


async def test_metadata_round_trip(store: EventStore) -> None:
    stream = unique_stream()
    assert await store.get_stream_metadata(stream) == {}
    await store.set_stream_metadata(stream, {"owner": "contract", "$maxCount": 5})
    assert await store.get_stream_metadata(stream) == {"owner": "contract", "$maxCount": 5}
    await store.set_stream_metadata(stream, {"owner": "other"})
    assert await store.get_stream_metadata(stream) == {"owner": "other"}


async def test_metadata_expectation_is_about_the_metadata_stream(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(3), NO_STREAM)
    await store.set_stream_metadata(stream, {"a": 1}, NO_STREAM)
    await store.set_stream_metadata(stream, {"a": 2}, 1)
    with pytest.raises(WrongExpectedVersion):
        await store.set_stream_metadata(stream, {"a": 3}, 1)
    assert await store.get_stream_metadata(stream) == {"a": 2}


async def test_max_count_keeps_the_newest_events_with_their_versions(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(5), NO_STREAM)
    await store.set_stream_metadata(stream, {"$maxCount": 2})
    assert await versions(store, stream) == [4, 5]
    assert await versions(store, stream, backwards=True) == [5, 4]
    assert await versions(store, stream, from_version=1) == [4, 5]
    await store.append(stream, new_events(1), 5)
    assert await versions(store, stream) == [5, 6]
    # The global log keeps everything.
    start = (await store.read_all(filter=EventFilter(stream_prefixes=(stream,)), limit=1))[0]
    assert start.version == 1


async def test_max_count_one_keeps_only_the_latest_snapshot(store: EventStore) -> None:
    stream = f"snapshot-{unique_stream()}"
    await store.set_stream_metadata(stream, {"$maxCount": 1})
    for n in range(3):
        await store.append(stream, new_events(1, "Snapshot", start=n), ANY)
    [latest] = await store.read_stream(stream, backwards=True, limit=1)
    assert (latest.version, latest.data) == (3, b'{"n": 2}')
    assert await versions(store, stream) == [3]


async def test_truncate_before_hides_older_revisions(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(5), NO_STREAM)
    # `$tb` is an EventStoreDB revision: revision 3 is version 4.
    await store.set_stream_metadata(stream, {"$tb": 3})
    assert await versions(store, stream) == [4, 5]


async def test_soft_delete_then_append_resumes_numbering(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(3), NO_STREAM)
    await store.delete_stream(stream, 3)
    assert await store.read_stream(stream) == []
    result = await store.append(stream, new_events(2), NO_STREAM)
    assert result.version == 5
    assert await versions(store, stream) == [4, 5]


async def test_soft_delete_then_append_at_the_old_version(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(3), NO_STREAM)
    await store.delete_stream(stream)
    assert (await store.append(stream, new_events(1), 3)).version == 4
    assert await versions(store, stream) == [4]


async def test_delete_checks_its_expectation(store: EventStore) -> None:
    stream = unique_stream()
    with pytest.raises(WrongExpectedVersion) as caught:
        await store.delete_stream(stream, 1)
    assert caught.value.actual is None
    await store.append(stream, new_events(2), NO_STREAM)
    with pytest.raises(WrongExpectedVersion) as caught:
        await store.delete_stream(stream, 1)
    assert caught.value.actual == 2
    assert await versions(store, stream) == [1, 2]


async def test_deleting_a_stream_that_never_existed_is_a_conflict(store: EventStore) -> None:
    stream = unique_stream()
    for expected in (ANY, NO_STREAM, 1):
        with pytest.raises(WrongExpectedVersion) as caught:
            await store.delete_stream(stream, expected)
        assert caught.value.actual is None
    assert (await store.append(stream, new_events(1), NO_STREAM)).version == 1


async def test_tombstone_forbids_every_later_read_and_append(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(2), NO_STREAM)
    await store.tombstone_stream(stream, 2)
    with pytest.raises(StreamDeleted):
        await store.read_stream(stream)
    for expected in (ANY, NO_STREAM, 2):
        with pytest.raises(StreamDeleted):
            await store.append(stream, new_events(1), expected)
    with pytest.raises(StreamDeleted):
        await store.tombstone_stream(stream)
    with pytest.raises(StreamDeleted):
        await store.delete_stream(stream)


async def test_tombstone_checks_its_expectation(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(2), NO_STREAM)
    with pytest.raises(WrongExpectedVersion):
        await store.tombstone_stream(stream, 1)
    assert await versions(store, stream) == [1, 2]


async def test_tombstoning_a_stream_that_never_existed(store: EventStore) -> None:
    stream = unique_stream()
    await store.tombstone_stream(stream, ANY)
    with pytest.raises(StreamDeleted):
        await store.append(stream, new_events(1), NO_STREAM)


async def test_a_subscription_reaching_a_tombstone_ends_with_stream_deleted(
    store: EventStore,
) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(1), NO_STREAM)
    await store.tombstone_stream(stream)
    subscription = store.subscribe_stream(stream)
    with pytest.raises(StreamDeleted):
        await anext(subscription)


DELETED_STREAM_TB = 2**63 - 1
"""EventStoreDB's `$tb` of a soft-deleted stream (`EventNumber.DeletedStream`, long.MaxValue)."""


async def test_soft_delete_append_again_and_read(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(3), NO_STREAM)
    await store.delete_stream(stream)
    assert await store.read_stream(stream) == []
    await store.append(stream, new_events(2, start=3), NO_STREAM)
    assert await versions(store, stream) == [4, 5]
    assert await versions(store, stream, backwards=True) == [5, 4]
    assert await versions(store, stream, from_version=1, limit=1) == [4]
    assert [e.data for e in await store.read_stream(stream)] == [b'{"n": 3}', b'{"n": 4}']


async def test_the_deleted_marker_tb_hides_every_event(store: EventStore) -> None:
    # What a soft delete writes on EventStoreDB: stream reads clamp it to the head (+ 1 would
    # overflow a SQL bigint).
    stream = unique_stream()
    await store.append(stream, new_events(3), NO_STREAM)
    await store.set_stream_metadata(stream, {"$tb": DELETED_STREAM_TB})
    assert await store.read_stream(stream) == []
    assert await store.read_stream(stream, backwards=True) == []
    assert await store.read_stream(stream, from_version=2, limit=5) == []
    assert await store.get_stream_metadata(stream) == {"$tb": DELETED_STREAM_TB}
