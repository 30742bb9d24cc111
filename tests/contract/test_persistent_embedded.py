"""Embedded store only: persistent-subscription groups, checkpoints and parked events survive a
restart on the same data directory (a restart of EventStoreDB is not ours to drive)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from eventstore.embedded import SQLiteEventStore
from eventstore.port import (
    NO_STREAM,
    NackAction,
    NewEvent,
    PersistentSubscription,
    RecordedEvent,
    SubscriptionDropped,
    SubscriptionSettings,
)

SETTINGS = SubscriptionSettings(message_timeout=0.4, max_retry_count=3)


def new_events(count: int) -> list[NewEvent]:
    return [NewEvent(id=uuid.uuid4(), type="Tested", data=b"{}") for _ in range(count)]


async def receive(sub: PersistentSubscription, within: float = 5.0) -> RecordedEvent:
    return await asyncio.wait_for(anext(aiter(sub)), within)


async def test_restart_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stream, group, idle = "order-restart", "projector", "never-consumed"
    store = await SQLiteEventStore.open(data)
    await store.append(stream, new_events(5), NO_STREAM)
    await store.groups.create_subscription(group, stream=stream, settings=SETTINGS)
    await store.groups.create_subscription(idle, settings=SETTINGS)
    sub = await store.groups.read_subscription(group, stream=stream)
    got = [await receive(sub) for _ in range(5)]
    for event in got[:3]:
        await sub.ack(event)
    await sub.nack(got[3], NackAction.PARK)
    # got[4] stays unacknowledged: it is not behind the checkpoint, so it comes again.
    await store.close()
    with pytest.raises(SubscriptionDropped):
        await receive(sub)

    store = await SQLiteEventStore.open(data)
    try:
        info = await store.groups.get_subscription_info(group, stream=stream)
        assert (info.checkpoint, info.parked, info.settings) == (4, 1, SETTINGS)
        assert {i.group for i in await store.groups.list_subscriptions()} == {group, idle}
        assert [e.id for e in await store.groups.list_parked(group, stream=stream)] == [got[3].id]

        sub = await store.groups.read_subscription(group, stream=stream)
        again = await receive(sub)
        assert (again.id, again.version) == (got[4].id, 5)
        await sub.ack(again)
        await store.append(stream, new_events(1), 5)
        live = await receive(sub)
        assert live.version == 6
        await sub.ack(live)
        await sub.stop()
    finally:
        await store.close()


async def test_replayed_parked_events_not_yet_handled_stay_parked_across_a_restart(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    stream, group = "order-replay", "projector"
    store = await SQLiteEventStore.open(data)
    await store.append(stream, new_events(1), NO_STREAM)
    await store.groups.create_subscription(group, stream=stream, settings=SETTINGS)
    sub = await store.groups.read_subscription(group, stream=stream)
    parked = await receive(sub)
    await sub.nack(parked, NackAction.PARK)
    await store.groups.replay_parked(group, stream=stream)
    replayed = await receive(sub)
    assert (replayed.id, replayed.retry_count) == (parked.id, 0)
    assert await store.groups.list_parked(group, stream=stream) == []
    await store.close()  # before the replayed event was acknowledged

    store = await SQLiteEventStore.open(data)
    try:
        assert [e.id for e in await store.groups.list_parked(group, stream=stream)] == [parked.id]
    finally:
        await store.close()


async def test_a_parked_event_both_replayed_and_read_again_still_moves_the_checkpoint(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    stream, group = "order-both", "projector"
    settings = SubscriptionSettings(
        message_timeout=5.0, checkpoint_after=0.05, min_checkpoint_count=1
    )
    store = await SQLiteEventStore.open(data)
    await store.append(stream, new_events(2), NO_STREAM)
    await store.groups.create_subscription(group, stream=stream, settings=settings)
    sub = await store.groups.read_subscription(group, stream=stream)
    await receive(sub)  # version 1, never acknowledged: the checkpoint stays before it
    parked = await receive(sub)
    await sub.nack(parked, NackAction.PARK)
    await store.close()

    store = await SQLiteEventStore.open(data)
    try:
        sub = await store.groups.read_subscription(group, stream=stream)
        again = [await receive(sub), await receive(sub)]  # read again from the checkpoint
        assert [e.version for e in again] == [1, 2]
        # version 2 once more, still in flight
        await store.groups.replay_parked(group, stream=stream)
        versions = [e.version for e in again]
        for event in again:
            await sub.ack(event)
        while True:
            try:
                event = await receive(sub, 0.5)
            except TimeoutError:
                break
            versions.append(event.version)
            await sub.ack(event)
        assert sorted(set(versions)) == [1, 2]
        info = await store.groups.get_subscription_info(group, stream=stream)
        assert (info.checkpoint, info.parked) == (2, 0)
        await sub.stop()
    finally:
        await store.close()


async def test_close_leaves_no_tasks_behind(tmp_path: Path) -> None:
    store = await SQLiteEventStore.open(tmp_path / "data")
    await store.groups.create_subscription("projector", settings=SETTINGS)
    sub = await store.groups.read_subscription("projector")
    await store.append("order-tasks", new_events(1), NO_STREAM)
    await sub.ack(await receive(sub))
    await store.close()
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}
