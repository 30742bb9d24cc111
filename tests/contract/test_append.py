"""Contract: appends — expectations, conflicts, atomicity, idempotent retries, positions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from eventstore.port import (
    ANY,
    EXISTS,
    NO_STREAM,
    EventFilter,
    EventStore,
    ExpectedVersion,
    NewEvent,
    WrongExpectedVersion,
)
from tests.contract.conftest import new_events, unique_stream

# Clocks of the test and of a store on the same machine agree within this.
CLOCK_SLACK = timedelta(seconds=5)


async def test_no_stream_creates_and_versions_start_at_one(store: EventStore) -> None:
    stream = unique_stream()
    result = await store.append(stream, new_events(3), NO_STREAM)
    assert result.version == 3
    events = await store.read_stream(stream)
    assert [e.version for e in events] == [1, 2, 3]
    assert result.position == events[-1].position


async def test_no_stream_conflicts_when_the_stream_exists(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(2), NO_STREAM)
    with pytest.raises(WrongExpectedVersion) as caught:
        await store.append(stream, new_events(1), NO_STREAM)
    assert caught.value.stream == stream
    assert caught.value.expected is NO_STREAM
    assert caught.value.actual == 2


async def test_exact_version_appends_and_conflicts_carry_expected_and_actual(
    store: EventStore,
) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(2), NO_STREAM)
    result = await store.append(stream, new_events(1), 2)
    assert result.version == 3
    for stale in (1, 2, 4, 10):
        with pytest.raises(WrongExpectedVersion) as caught:
            await store.append(stream, new_events(1), stale)
        assert (caught.value.expected, caught.value.actual) == (stale, 3)
    assert len(await store.read_stream(stream)) == 3


async def test_exact_version_on_a_missing_stream_reports_no_actual(store: EventStore) -> None:
    stream = unique_stream()
    with pytest.raises(WrongExpectedVersion) as caught:
        await store.append(stream, new_events(1), 1)
    assert caught.value.actual is None
    assert await store.read_stream(stream) == []


async def test_any_appends_whatever_the_state(store: EventStore) -> None:
    stream = unique_stream()
    assert (await store.append(stream, new_events(1), ANY)).version == 1
    assert (await store.append(stream, new_events(2), ANY)).version == 3


async def test_exists_requires_the_stream(store: EventStore) -> None:
    stream = unique_stream()
    with pytest.raises(WrongExpectedVersion) as caught:
        await store.append(stream, new_events(1), EXISTS)
    assert caught.value.expected is EXISTS
    assert caught.value.actual is None
    await store.append(stream, new_events(1), NO_STREAM)
    assert (await store.append(stream, new_events(1), EXISTS)).version == 2


async def test_empty_append_checks_the_expectation_only(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(2), NO_STREAM)
    assert (await store.append(stream, [], 2)).version == 2
    with pytest.raises(WrongExpectedVersion):
        await store.append(stream, [], 1)
    assert len(await store.read_stream(stream)) == 2


async def test_a_failed_multi_event_append_writes_nothing(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(1), NO_STREAM)
    with pytest.raises(WrongExpectedVersion):
        await store.append(stream, new_events(5), NO_STREAM)
    assert [e.version for e in await store.read_stream(stream)] == [1]


async def test_readers_never_see_part_of_an_append(store: EventStore) -> None:
    stream = unique_stream()
    batch, batches = 5, 20
    seen: set[int] = set()

    async def write() -> None:
        expected: ExpectedVersion = NO_STREAM
        for _ in range(batches):
            expected = (await store.append(stream, new_events(batch), expected)).version

    async def watch(done: asyncio.Event) -> None:
        while not done.is_set():
            seen.add(len(await store.read_stream(stream)))
            await asyncio.sleep(0)

    done = asyncio.Event()
    watcher = asyncio.create_task(watch(done))
    await write()
    done.set()
    await watcher
    assert all(count % batch == 0 for count in seen)
    assert len(await store.read_stream(stream)) == batch * batches


async def test_retrying_an_exact_append_returns_the_original_result(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(1), NO_STREAM)
    batch = new_events(3)
    first = await store.append(stream, batch, 1)
    await store.append(stream, new_events(2), 4)  # the stream moves on meanwhile
    assert await store.append(stream, batch, 1) == first
    assert len(await store.read_stream(stream)) == 6


async def test_retrying_a_no_stream_append_returns_the_original_result(store: EventStore) -> None:
    stream = unique_stream()
    batch = new_events(2)
    first = await store.append(stream, batch, NO_STREAM)
    assert await store.append(stream, batch, NO_STREAM) == first
    assert len(await store.read_stream(stream)) == 2


async def test_retrying_an_any_append_writes_nothing(store: EventStore) -> None:
    stream = unique_stream()
    batch = new_events(2)
    first = await store.append(stream, batch, ANY)
    assert await store.append(stream, batch, ANY) == first
    assert len(await store.read_stream(stream)) == 2


async def test_written_ids_followed_by_new_ones_are_a_conflict(store: EventStore) -> None:
    stream = unique_stream()
    batch = new_events(2)
    await store.append(stream, batch, NO_STREAM)
    with pytest.raises(WrongExpectedVersion):
        await store.append(stream, [*batch, *new_events(1)], NO_STREAM)
    with pytest.raises(WrongExpectedVersion):
        await store.append(stream, [batch[0], *new_events(1)], NO_STREAM)
    assert len(await store.read_stream(stream)) == 2


async def test_concurrent_appends_at_one_version_exactly_one_wins(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(1), NO_STREAM)
    outcomes = await asyncio.gather(
        *(store.append(stream, new_events(1, start=i), 1) for i in range(20)),
        return_exceptions=True,
    )
    wins = [o for o in outcomes if not isinstance(o, BaseException)]
    conflicts = [o for o in outcomes if isinstance(o, WrongExpectedVersion)]
    assert len(wins) == 1
    assert wins[0].version == 2
    assert len(conflicts) == 19
    assert {(c.expected, c.actual) for c in conflicts} == {(1, 2)}
    assert len(await store.read_stream(stream)) == 2


async def test_positions_strictly_increase_across_streams(store: EventStore) -> None:
    streams = [unique_stream() for _ in range(3)]
    results = []
    for round_ in range(3):
        for stream in streams:
            results.append(await store.append(stream, new_events(2, start=round_), ANY))
    positions = [r.position for r in results]
    assert positions == sorted(set(positions))
    first = (await store.read_stream(streams[0], limit=1))[0]
    everything = await store.read_all(
        from_position=first.position,
        filter=EventFilter(stream_prefixes=tuple(streams)),
    )
    logged = [e.position for e in everything]
    assert len(logged) == 18
    assert logged == sorted(set(logged))
    assert positions[-1] == logged[-1]
    assert positions[-1] <= await store.head_position()


async def test_every_event_carries_what_was_appended_and_a_recorded_at(
    store: EventStore,
) -> None:
    stream = unique_stream()
    event = NewEvent(
        id=new_events(1)[0].id,
        type="OrderPlaced",
        data=b'{"orderId": "o-1", "total": "25.00"}',
        metadata=b'{"$correlationId": "c-1", "actor": "alice"}',
    )
    before = datetime.now(UTC)
    result = await store.append(stream, [event], NO_STREAM)
    after = datetime.now(UTC)
    [stored] = await store.read_stream(stream)
    assert (stored.id, stored.stream, stored.type, stored.version) == (
        event.id,
        stream,
        "OrderPlaced",
        1,
    )
    assert stored.position == result.position
    assert stored.data == event.data
    assert stored.metadata == event.metadata
    assert stored.content_type == "application/json"
    assert stored.recorded_at.utcoffset() == timedelta(0)
    assert before - CLOCK_SLACK <= stored.recorded_at <= after + CLOCK_SLACK
    [in_log] = await store.read_all(from_position=result.position, limit=1)
    assert in_log == stored


async def test_system_streams_can_be_appended_to(store: EventStore) -> None:
    stream = f"$persistentsubscription-{unique_stream()}::group-parked"
    result = await store.append(stream, new_events(2, "$>"), ANY)
    assert result.version == 2
    assert [e.version for e in await store.read_stream(stream)] == [1, 2]
