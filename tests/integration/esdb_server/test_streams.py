"""Streams over real gRPC with the real esdbclient: appends, conflicts, idempotence, reads, filters,
deletes and tombstones, as EventStoreDB 24.x answers them."""

from __future__ import annotations

import json
import sys
import uuid

import pytest
from esdbclient import AsyncEventStoreDBClient, EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import NotFound, StreamIsDeleted, WrongCurrentVersion


def _stream() -> str:
    return f"order-{uuid.uuid4()}"


def _events(*types: str) -> list[NewEvent]:
    return [NewEvent(type=t, data=json.dumps({"t": t}).encode()) for t in types]


async def test_revisions_from_zero_and_last_event_position(
    aclient: AsyncEventStoreDBClient,
) -> None:
    stream = _stream()
    position = await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("A", "B", "C")
    )
    events = await aclient.get_stream(stream)
    assert [e.stream_position for e in events] == [0, 1, 2]
    assert events[-1].commit_position == position
    commits = [e.commit_position or 0 for e in events]
    assert commits == sorted(set(commits))
    assert commits[0] > 0
    assert all(e.prepare_position == e.commit_position for e in events)
    assert commits[1] - commits[0] > 1  # positions are not dense
    assert await aclient.get_current_version(stream) == 2
    assert events[0].recorded_at is not None
    assert events[0].recorded_at.year >= 2024
    assert events[0].content_type == "application/json"


async def test_wrong_expected_version(aclient: AsyncEventStoreDBClient) -> None:
    stream = _stream()
    with pytest.raises(WrongCurrentVersion, match="does not exist"):
        await aclient.append_to_stream(stream, current_version=0, events=_events("A"))
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("A")
    )
    with pytest.raises(WrongCurrentVersion, match="is 0"):
        await aclient.append_to_stream(stream, current_version=5, events=_events("B"))
    with pytest.raises(WrongCurrentVersion):
        await aclient.append_to_stream(
            stream, current_version=StreamState.NO_STREAM, events=_events("B")
        )
    await aclient.append_to_stream(stream, current_version=StreamState.EXISTS, events=_events("B"))
    await aclient.append_to_stream(stream, current_version=StreamState.ANY, events=_events("C"))
    assert await aclient.get_current_version(stream) == 2


def test_sync_append_conflicts_and_idempotence(client: EventStoreDBClient) -> None:
    stream = _stream()
    one = _events("A")
    first = client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=one)
    # One event goes through Streams.Append; the same id at the same revision is a no-op.
    again = client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=one)
    assert again == first
    with pytest.raises(WrongCurrentVersion):
        client.append_to_stream(stream, current_version=7, events=_events("B"))
    with pytest.raises(WrongCurrentVersion, match="does not exist"):
        client.append_to_stream(_stream(), current_version=3, events=_events("B"))
    two = _events("B", "C")
    position = client.append_to_stream(stream, current_version=0, events=two)  # BatchAppend
    assert client.append_to_stream(stream, current_version=0, events=two) == position
    assert [e.type for e in client.get_stream(stream)] == ["A", "B", "C"]


async def test_idempotent_batch_returns_original_position(aclient: AsyncEventStoreDBClient) -> None:
    stream = _stream()
    batch = _events("A", "B")
    first = await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=batch
    )
    await aclient.append_to_stream(stream, current_version=1, events=_events("C"))
    again = await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=batch
    )
    assert again == first
    assert len(await aclient.get_stream(stream)) == 3
    with pytest.raises(WrongCurrentVersion):  # written ids followed by new ones: a conflict
        await aclient.append_to_stream(
            stream, current_version=StreamState.NO_STREAM, events=[*batch, *_events("D")]
        )


async def test_read_missing_stream_is_not_found(aclient: AsyncEventStoreDBClient) -> None:
    with pytest.raises(NotFound):
        await aclient.get_stream(_stream())
    assert await aclient.get_current_version(_stream()) is StreamState.NO_STREAM


async def test_stream_reads_forwards_backwards_limits(aclient: AsyncEventStoreDBClient) -> None:
    stream = _stream()
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events(*"ABCDE")
    )
    assert [e.type for e in await aclient.get_stream(stream, stream_position=2)] == ["C", "D", "E"]
    assert [e.type for e in await aclient.get_stream(stream, backwards=True)] == list("EDCBA")
    assert [
        e.type for e in await aclient.get_stream(stream, stream_position=1, backwards=True)
    ] == [
        "B",
        "A",
    ]
    assert [e.type for e in await aclient.get_stream(stream, limit=2)] == ["A", "B"]
    assert await aclient.get_stream(stream, stream_position=9) == ()
    assert sys.maxsize == 2**63 - 1  # the client's "no limit", which the server must accept


def test_read_all_positions_and_directions(client: EventStoreDBClient) -> None:
    s1, s2 = _stream(), _stream()
    client.append_to_stream(s1, current_version=StreamState.NO_STREAM, events=_events("A", "B"))
    p2 = client.append_to_stream(
        s2, current_version=StreamState.NO_STREAM, events=_events("C", "D")
    )
    everything = list(client.read_all())
    mine = [e for e in everything if e.stream_name in (s1, s2)]
    assert [e.type for e in mine] == ["A", "B", "C", "D"]
    third = mine[2].commit_position
    assert [e.type for e in client.read_all(commit_position=third)][:2] == ["C", "D"]
    backwards = list(client.read_all(commit_position=p2, backwards=True))
    assert [e.type for e in backwards[:3]] == ["C", "B", "A"]  # backwards excludes the position
    assert [e.type for e in client.read_all(backwards=True, limit=1)] == ["D"]
    assert client.get_commit_position() == p2


async def test_read_all_filters_are_regex_searches(aclient: AsyncEventStoreDBClient) -> None:
    stream = _stream()
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("OrderPlaced", "ItemAdded")
    )
    await aclient.set_stream_metadata(stream, metadata={"$maxCount": 10})
    types = [e.type async for e in await aclient.read_all(filter_include=["Order.*"])]
    assert types == ["OrderPlaced"]
    every = [e async for e in await aclient.read_all(filter_exclude=[])]
    assert any(e.type == "$metadata" and e.stream_name == f"$${stream}" for e in every)
    default = [e async for e in await aclient.read_all()]
    assert not any(e.type.startswith("$") for e in default)
    by_stream = [
        e.stream_name
        async for e in await aclient.read_all(
            filter_include=[f"{stream}"], filter_by_stream_name=True
        )
    ]
    assert by_stream == [stream, stream]


async def test_stream_metadata_round_trip(aclient: AsyncEventStoreDBClient) -> None:
    stream = _stream()
    assert await aclient.get_stream_metadata(stream) == ({}, StreamState.NO_STREAM)
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events(*"ABC")
    )
    await aclient.set_stream_metadata(stream, metadata={"$maxCount": 2})
    metadata, version = await aclient.get_stream_metadata(stream)
    assert metadata == {"$maxCount": 2}
    assert version == 0
    events = await aclient.get_stream(stream)
    assert [(e.type, e.stream_position) for e in events] == [("B", 1), ("C", 2)]


async def test_soft_delete_then_resume(aclient: AsyncEventStoreDBClient) -> None:
    stream = _stream()
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("A")
    )
    with pytest.raises(WrongCurrentVersion):
        await aclient.delete_stream(stream, current_version=5)
    await aclient.delete_stream(stream, current_version=0)
    with pytest.raises(NotFound):
        await aclient.get_stream(stream)
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("B")
    )
    events = await aclient.get_stream(stream)
    assert [(e.type, e.stream_position) for e in events] == [("B", 1)]
    with pytest.raises(NotFound):
        await aclient.delete_stream(_stream(), current_version=StreamState.ANY)


async def test_tombstone(aclient: AsyncEventStoreDBClient) -> None:
    stream = _stream()
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("A")
    )
    await aclient.tombstone_stream(stream, current_version=0)
    with pytest.raises(StreamIsDeleted):
        await aclient.get_stream(stream)
    with pytest.raises(StreamIsDeleted):
        await aclient.append_to_stream(stream, current_version=StreamState.ANY, events=_events("B"))
    with pytest.raises(StreamIsDeleted):
        await aclient.delete_stream(stream, current_version=StreamState.ANY)
    await aclient.tombstone_stream(_stream(), current_version=StreamState.ANY)
    everything = [e async for e in await aclient.read_all(filter_exclude=[])]
    assert any(e.stream_name == stream and e.type == "$streamDeleted" for e in everything)


def test_sync_tombstoned_append_is_failed_precondition(client: EventStoreDBClient) -> None:
    stream = _stream()
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=_events("A"))
    client.tombstone_stream(stream, current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeleted):
        client.append_to_stream(stream, current_version=StreamState.ANY, events=_events("B"))
    with pytest.raises(StreamIsDeleted):
        client.get_stream(stream)
