"""Adapter-specific behaviour over real gRPC: numbering, errors, filters, subscriptions."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
from esdbclient import AsyncEventStoreDBClient

from eventstore.esdb import EventStoreDBStore
from eventstore.port import (
    ANY,
    EXISTS,
    NO_STREAM,
    EventFilter,
    EventStore,
    NewEvent,
    StoreUnavailable,
    StreamDeleted,
    WrongExpectedVersion,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def events(count: int, event_type: str = "Tested") -> list[NewEvent]:
    return [NewEvent(id=uuid.uuid4(), type=event_type, data=b"{}") for _ in range(count)]


async def test_the_adapter_is_an_event_store(esdb: EventStoreDBStore) -> None:
    store: EventStore = esdb  # mypy checks the Protocol here
    assert await store.head_position() == 0


async def test_versions_are_revisions_plus_one_and_positions_commit_positions(
    esdb: EventStoreDBStore, esdb_url: str
) -> None:
    stream = unique("numbering")
    result = await esdb.append(stream, events(3), NO_STREAM)
    ours = await esdb.read_stream(stream)
    client = AsyncEventStoreDBClient(esdb_url)
    await client.connect()
    try:
        theirs = await client.get_stream(stream)
    finally:
        await client.close()
    assert [e.version for e in ours] == [e.stream_position + 1 for e in theirs] == [1, 2, 3]
    assert [e.position for e in ours] == [e.commit_position for e in theirs]
    assert (result.version, result.position) == (3, ours[-1].position)
    assert all(e.recorded_at.tzinfo is not None for e in ours)


async def test_append_result_versions_for_every_expectation(esdb: EventStoreDBStore) -> None:
    stream = unique("expect")
    assert (await esdb.append(stream, events(2), NO_STREAM)).version == 2
    assert (await esdb.append(stream, events(1), 2)).version == 3
    assert (await esdb.append(stream, events(1), ANY)).version == 4
    last = await esdb.append(stream, events(2), EXISTS)
    assert last.version == 6
    assert last.position == (await esdb.read_stream(stream, backwards=True, limit=1))[0].position
    empty = await esdb.append(stream, [], 6)
    assert (empty.version, empty.position) == (6, last.position)


async def test_conflicts_carry_the_actual_version(esdb: EventStoreDBStore) -> None:
    stream = unique("conflict")
    with pytest.raises(WrongExpectedVersion) as missing:
        await esdb.append(stream, events(1), 3)
    assert (missing.value.stream, missing.value.expected, missing.value.actual) == (stream, 3, None)
    await esdb.append(stream, events(2), NO_STREAM)
    with pytest.raises(WrongExpectedVersion) as exists:
        await esdb.append(stream, events(1), NO_STREAM)
    assert exists.value.actual == 2
    with pytest.raises(WrongExpectedVersion) as stale:
        await esdb.append(stream, events(1), 1)
    assert stale.value.actual == 2
    with pytest.raises(WrongExpectedVersion) as delete_stale:
        await esdb.delete_stream(stream, 1)
    assert delete_stale.value.actual == 2


async def test_tombstoned_streams_raise_stream_deleted(esdb: EventStoreDBStore) -> None:
    stream = unique("tomb")
    await esdb.append(stream, events(1), NO_STREAM)
    await esdb.tombstone_stream(stream)
    with pytest.raises(StreamDeleted):
        await esdb.append(stream, events(1), ANY)
    with pytest.raises(StreamDeleted):
        await esdb.read_stream(stream)
    subscription = esdb.subscribe_stream(stream)
    with pytest.raises(StreamDeleted):
        await anext(subscription)


async def test_closed_store_and_unreachable_server_are_unavailable(
    esdb: EventStoreDBStore,
) -> None:
    await esdb.close()
    with pytest.raises(StoreUnavailable):
        await esdb.read_stream("anything")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = await EventStoreDBStore.connect(f"esdb://127.0.0.1:{port}?Tls=false")
    try:
        with pytest.raises(StoreUnavailable):
            await nowhere.append(unique("down"), events(1), NO_STREAM)
    finally:
        await nowhere.close()


async def test_filters_are_escaped_regular_expressions(esdb: EventStoreDBStore) -> None:
    prefix = unique("re.x+")
    await esdb.append(f"{prefix}-a", events(1, "Order.Placed"), NO_STREAM)
    await esdb.append(f"{prefix}-b", events(1, "OrderXPlaced"), NO_STREAM)
    lookalike = prefix.replace(".", "Z")
    await esdb.append(f"{lookalike}-c", events(1, "Order.Placed"), NO_STREAM)

    by_type = await esdb.read_all(filter=EventFilter(event_types=("Order.Placed",)))
    assert {e.stream for e in by_type} >= {f"{prefix}-a", f"{lookalike}-c"}
    assert all(e.type == "Order.Placed" for e in by_type)
    by_prefix = await esdb.read_all(filter=EventFilter(stream_prefixes=(prefix,)))
    assert [e.stream for e in by_prefix] == [f"{prefix}-a", f"{prefix}-b"]
    both = await esdb.read_all(
        filter=EventFilter(event_types=("Order.Placed",), stream_prefixes=(prefix,))
    )
    assert [e.stream for e in both] == [f"{prefix}-a"]


async def test_system_events_are_excluded_unless_asked_for(esdb: EventStoreDBStore) -> None:
    stream = unique("sys")
    await esdb.append(stream, events(1), NO_STREAM)
    await esdb.set_stream_metadata(stream, {"$maxCount": 5})
    assert await esdb.get_stream_metadata(stream) == {"$maxCount": 5}
    visible = await esdb.read_all()
    assert stream in {e.stream for e in visible}
    assert not any(e.is_system for e in visible)
    everything = await esdb.read_all(filter=EventFilter(include_system=True))
    assert f"$${stream}" in {e.stream for e in everything}
    assert await esdb.head_position() == everything[-1].position


async def test_read_all_pages_and_backwards_reads_are_inclusive(esdb: EventStoreDBStore) -> None:
    prefix = unique("page")
    for index in range(5):
        await esdb.append(f"{prefix}-{index}", events(1), NO_STREAM)
    only_ours = EventFilter(stream_prefixes=(prefix,))
    forwards = await esdb.read_all(filter=only_ours)
    assert len(forwards) == 5
    middle = forwards[2].position
    assert [e.position for e in await esdb.read_all(from_position=middle, filter=only_ours)] == [
        e.position for e in forwards[2:]
    ]
    backwards = await esdb.read_all(from_position=middle, backwards=True, filter=only_ours)
    assert [e.position for e in backwards] == [e.position for e in reversed(forwards[:3])]
    assert len(await esdb.read_all(from_position=middle, limit=2, filter=only_ours)) == 2


async def test_catch_up_subscriptions_filter_and_start_exclusively(esdb: EventStoreDBStore) -> None:
    prefix = unique("sub")
    await esdb.append(f"{prefix}-a", events(2), NO_STREAM)
    await esdb.append(f"{prefix}-b", events(1, "Other"), NO_STREAM)
    first = (await esdb.read_stream(f"{prefix}-a"))[0]
    subscription = esdb.subscribe_all(
        after_position=first.position,
        filter=EventFilter(stream_prefixes=(prefix,), event_types=("Tested",)),
    )
    try:
        got = await asyncio.wait_for(anext(subscription), 5)
        assert (got.stream, got.version) == (f"{prefix}-a", 2)
        await esdb.append(f"{prefix}-b", events(1), 1)
        live = await asyncio.wait_for(anext(subscription), 5)
        assert (live.stream, live.version) == (f"{prefix}-b", 2)
    finally:
        await subscription.aclose()


async def test_cancelling_a_catch_up_consumer_cancels_it(esdb: EventStoreDBStore) -> None:
    stream = unique("cancel")

    async def consume() -> None:
        async for _ in esdb.subscribe_stream(stream):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
