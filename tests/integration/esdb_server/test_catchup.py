"""Catch-up subscriptions: confirmation first, exclusive start points, caught-up, checkpoints."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from esdbclient import AsyncEventStoreDBClient, NewEvent, StreamState
from esdbclient.events import CaughtUp, Checkpoint
from esdbclient.exceptions import StreamIsDeleted


def _events(*types: str) -> list[NewEvent]:
    return [NewEvent(type=t, data=b"{}") for t in types]


async def test_stream_subscription_history_caught_up_then_live(
    aclient: AsyncEventStoreDBClient,
) -> None:
    stream = f"s-{uuid.uuid4()}"
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("A", "B", "C")
    )
    subscription = await aclient.subscribe_to_stream(
        stream, stream_position=0, include_caught_up=True
    )
    received: list[object] = []
    async with subscription:
        async for item in subscription:
            received.append(item)
            if isinstance(item, CaughtUp):
                await aclient.append_to_stream(stream, current_version=2, events=_events("D"))
            elif getattr(item, "type", None) == "D":
                break
    kinds = ["CaughtUp" if isinstance(i, CaughtUp) else getattr(i, "type", None) for i in received]
    assert kinds == ["B", "C", "CaughtUp", "D"]  # exclusive of revision 0


async def test_subscription_to_missing_stream_catches_up(aclient: AsyncEventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    subscription = await aclient.subscribe_to_stream(stream, include_caught_up=True)
    async with subscription:
        first = await anext(subscription)
        assert isinstance(first, CaughtUp)
        await aclient.append_to_stream(
            stream, current_version=StreamState.NO_STREAM, events=_events("A")
        )
        event = await asyncio.wait_for(anext(subscription), 5)
        assert event.type == "A"
        assert event.stream_position == 0


async def test_all_subscription_from_position_is_exclusive(
    aclient: AsyncEventStoreDBClient,
) -> None:
    stream = f"s-{uuid.uuid4()}"
    first = await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("A")
    )
    await aclient.append_to_stream(stream, current_version=0, events=_events("B"))
    subscription = await aclient.subscribe_to_all(commit_position=first)
    async with subscription:
        event = await asyncio.wait_for(anext(subscription), 5)
    assert event.type == "B"


async def test_filtered_all_subscription_sends_checkpoints(
    aclient: AsyncEventStoreDBClient,
) -> None:
    stream = f"s-{uuid.uuid4()}"
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events(*(["Noise"] * 6), "Wanted")
    )
    head = await aclient.get_commit_position()
    subscription = await aclient.subscribe_to_all(
        filter_include=["Wanted"],
        include_checkpoints=True,
        include_caught_up=True,
        window_size=2,
        checkpoint_interval_multiplier=1,
    )
    received: list[object] = []
    async with subscription:
        async for item in subscription:
            received.append(item)
            if isinstance(item, CaughtUp):
                break
    checkpoints = [i for i in received if isinstance(i, Checkpoint)]
    assert len(checkpoints) >= 3
    assert all((c.commit_position or 0) <= head for c in checkpoints)
    assert checkpoints[-1].commit_position == head
    assert [
        getattr(i, "type", None) for i in received if not isinstance(i, (Checkpoint, CaughtUp))
    ] == ["Wanted"]


async def test_unfiltered_all_subscription_sends_no_checkpoints(
    aclient: AsyncEventStoreDBClient,
) -> None:
    await aclient.append_to_stream(
        f"s-{uuid.uuid4()}", current_version=StreamState.NO_STREAM, events=_events(*"ABCD")
    )
    subscription = await aclient.subscribe_to_all(
        filter_exclude=[], include_checkpoints=True, include_caught_up=True
    )
    received: list[object] = []
    async with subscription:
        async for item in subscription:
            received.append(item)
            if isinstance(item, CaughtUp):
                break
    assert not any(isinstance(i, Checkpoint) for i in received)


async def test_tombstone_ends_stream_subscription(aclient: AsyncEventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("A")
    )
    await aclient.tombstone_stream(stream, current_version=0)
    subscription = await aclient.subscribe_to_stream(stream)
    async with subscription:
        with pytest.raises(StreamIsDeleted):
            await anext(subscription)
