"""First contact."""

from __future__ import annotations

import uuid

from esdbclient import AsyncEventStoreDBClient, EventStoreDBClient, NewEvent, StreamState


async def test_async_append_and_read(aclient: AsyncEventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    position = await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=[NewEvent(type="A", data=b"{}")]
    )
    events = await aclient.get_stream(stream)
    assert [e.type for e in events] == ["A"]
    assert events[0].commit_position == position


def test_sync_append_and_read(client: EventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    position = client.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=[NewEvent(type="A", data=b"{}")]
    )
    events = client.get_stream(stream)
    assert [e.type for e in events] == ["A"]
    assert events[0].commit_position == position
