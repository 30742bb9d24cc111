"""Where the test server must answer as EventStoreDB 24 does, each checked with the real
esdbclient: a consumer's in-flight limit across retries, deleting a soft-deleted stream again,
the `$tb` a soft delete leaves in the metadata, and `$metadata` events in `$all`."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Literal

import pytest
from esdbclient import AsyncEventStoreDBClient, EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import NotFound, StreamIsDeleted, WrongCurrentVersion


def _events(*types: str) -> list[NewEvent]:
    return [NewEvent(type=t, data=b"{}") for t in types]


Strategy = Literal["DispatchToSingle", "RoundRobin", "Pinned"]


@pytest.mark.parametrize("strategy", ["DispatchToSingle", "RoundRobin", "Pinned"])
async def test_a_buffer_of_one_holds_later_events_while_the_first_is_retried(
    aclient: AsyncEventStoreDBClient, strategy: Strategy
) -> None:
    # The asyncio client's acks are ignored (see test_persistent), so A is never acknowledged:
    # it times out and is retried until parked. With one event in flight allowed, B must wait.
    stream = f"s-{uuid.uuid4()}"
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("A", "B")
    )
    await aclient.create_subscription_to_stream(
        "g", stream, message_timeout=0.2, max_retry_count=2, consumer_strategy=strategy
    )
    subscription = await aclient.read_subscription_to_stream("g", stream, event_buffer_size=1)
    seen: list[tuple[str, int | None]] = []
    async with subscription:
        while len(seen) < 4:
            event = await asyncio.wait_for(anext(subscription), 10)
            seen.append((event.type, event.retry_count))
    assert seen == [("A", 0), ("A", 1), ("A", 2), ("B", 0)]


DELETED_STREAM = 2**63 - 1  # EventStoreDB's EventNumber.DeletedStream, the `$tb` of a delete


def _soft_deleted(client: EventStoreDBClient) -> str:
    stream = f"s-{uuid.uuid4()}"
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=_events("A", "B"))
    client.delete_stream(stream, current_version=1)
    return stream


@pytest.mark.parametrize("expected", [StreamState.ANY, StreamState.NO_STREAM, 1])
def test_deleting_a_soft_deleted_stream_again_succeeds(
    client: EventStoreDBClient, expected: StreamState | int
) -> None:
    stream = _soft_deleted(client)
    client.delete_stream(stream, current_version=expected)
    metadata, metadata_version = client.get_stream_metadata(stream)
    assert (metadata, metadata_version) == ({"$tb": DELETED_STREAM}, 1)
    with pytest.raises(NotFound):
        client.get_stream(stream)


def test_deleting_a_soft_deleted_stream_again_checks_the_expectation(
    client: EventStoreDBClient,
) -> None:
    stream = _soft_deleted(client)
    with pytest.raises(StreamIsDeleted):
        client.delete_stream(stream, current_version=StreamState.EXISTS)
    with pytest.raises(WrongCurrentVersion, match="Actual version: 1"):
        client.delete_stream(stream, current_version=0)
    never = f"s-{uuid.uuid4()}"
    with pytest.raises(NotFound):
        client.delete_stream(never, current_version=StreamState.ANY)
    assert client.get_stream_metadata(stream) == ({"$tb": DELETED_STREAM}, 0)


def test_a_soft_delete_leaves_tb_and_recreating_moves_it_to_the_first_new_event(
    client: EventStoreDBClient,
) -> None:
    stream = f"s-{uuid.uuid4()}"
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=_events("A", "B"))
    client.set_stream_metadata(stream, metadata={"$maxCount": 10})
    client.delete_stream(stream, current_version=StreamState.ANY)
    # The delete replaces the metadata: only `$tb`, at EventStoreDB's "deleted" revision.
    assert client.get_stream_metadata(stream) == ({"$tb": DELETED_STREAM}, 1)
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=_events("C"))
    assert client.get_stream_metadata(stream) == ({"$tb": 2}, 2)
    assert [(e.type, e.stream_position) for e in client.get_stream(stream)] == [("C", 2)]


def test_metadata_events_are_in_all_in_order(client: EventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=_events("A"))
    client.set_stream_metadata(stream, metadata={"$maxCount": 5})
    client.delete_stream(stream, current_version=StreamState.ANY)
    client.append_to_stream(stream, current_version=StreamState.ANY, events=_events("B"))
    mine = [
        (e.stream_name, e.type, json.loads(e.data) if e.type == "$metadata" else None)
        for e in client.read_all(filter_exclude=[])
        if e.stream_name in (stream, f"$${stream}")
    ]
    assert mine == [
        (stream, "A", None),
        (f"$${stream}", "$metadata", {"$maxCount": 5}),
        (f"$${stream}", "$metadata", {"$tb": DELETED_STREAM}),
        (stream, "B", None),
        (f"$${stream}", "$metadata", {"$tb": 1}),
    ]
    # The client's default filter leaves system events out, as against EventStoreDB.
    assert [e.type for e in client.read_all() if e.stream_name in (stream, f"$${stream}")] == [
        "A",
        "B",
    ]
    subscription = client.subscribe_to_all(filter_exclude=[], timeout=5)
    live: list[str] = []
    for event in subscription:
        if event.stream_name in (stream, f"$${stream}"):
            live.append(event.type)
        if len(live) == 5:
            break
    subscription.stop()
    assert live == ["A", "$metadata", "$metadata", "B", "$metadata"]
