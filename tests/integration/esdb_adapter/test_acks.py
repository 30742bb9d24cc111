"""The esdbclient 1.1.7 ack defect (kurrentdbclient issue 35) and the adapter's fix, over real gRPC.

The test server, like EventStoreDB 24.10, ignores acks whose subscription id is not the one it
confirmed. esdbclient's asyncio consumer sends an empty id; the adapter sends the confirmed one.
"""

from __future__ import annotations

import asyncio
import uuid

from esdbclient import AsyncEventStoreDBClient

from eventstore.esdb import EventStoreDBStore
from eventstore.port import (
    NO_STREAM,
    NackAction,
    NewEvent,
    PersistentSubscription,
    RecordedEvent,
    SubscriptionSettings,
)

TIMEOUT = 0.4
FAST = SubscriptionSettings(
    message_timeout=TIMEOUT, max_retry_count=5, checkpoint_after=0.1, min_checkpoint_count=1
)
WAIT = 5.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def events(count: int) -> list[NewEvent]:
    return [NewEvent(id=uuid.uuid4(), type="Tested", data=b"{}") for _ in range(count)]


async def receive(sub: PersistentSubscription, within: float = WAIT) -> RecordedEvent:
    return await asyncio.wait_for(anext(aiter(sub)), within)


async def nothing_within(sub: PersistentSubscription, seconds: float) -> bool:
    try:
        await receive(sub, seconds)
    except TimeoutError:
        return True
    return False


async def test_plain_esdbclient_acks_are_ignored_by_the_server(esdb_url: str) -> None:
    """The control: without the fix an acknowledged event comes back after the timeout."""
    stream, group = unique("plain"), unique("g")
    client = AsyncEventStoreDBClient(esdb_url)
    await client.connect()
    try:
        store = await EventStoreDBStore.connect(esdb_url)
        try:
            await store.append(stream, events(1), NO_STREAM)
            await store.groups.create_subscription(group, stream=stream, settings=FAST)
        finally:
            await store.close()
        subscription = await client.read_subscription_to_stream(group, stream)
        try:
            first = await asyncio.wait_for(anext(subscription), WAIT)
            await subscription.ack(first)
            again = await asyncio.wait_for(anext(subscription), WAIT)
            assert (again.id, again.retry_count) == (first.id, 1)
        finally:
            await subscription.stop()
    finally:
        await client.close()


async def test_acknowledged_event_is_not_redelivered_after_the_message_timeout(
    esdb: EventStoreDBStore,
) -> None:
    stream, group = unique("acked"), unique("g")
    await esdb.append(stream, events(2), NO_STREAM)
    await esdb.groups.create_subscription(group, stream=stream, settings=FAST)
    sub = await esdb.groups.read_subscription(group, stream=stream)
    try:
        for _ in range(2):
            await sub.ack(await receive(sub))
        assert await nothing_within(sub, TIMEOUT * 3)
        info = await esdb.groups.get_subscription_info(group, stream=stream)
        assert info.connections == 1
    finally:
        await sub.stop()
    deadline = asyncio.get_running_loop().time() + WAIT
    while (await esdb.groups.get_subscription_info(group, stream=stream)).checkpoint != 2:
        assert asyncio.get_running_loop().time() < deadline, "checkpoint never reached 2"
        await asyncio.sleep(0.05)


async def test_acks_batched_at_stop_are_flushed(esdb: EventStoreDBStore) -> None:
    """An ack still in esdbclient's batch when the consumer stops reaches the server."""
    stream, group = unique("flush"), unique("g")
    await esdb.append(stream, events(1), NO_STREAM)
    await esdb.groups.create_subscription(group, stream=stream, settings=FAST)
    first = await esdb.groups.read_subscription(group, stream=stream)
    await first.ack(await receive(first))
    await first.stop()  # immediately: the ack is still batched
    second = await esdb.groups.read_subscription(group, stream=stream)
    try:
        # An unacknowledged event would go to the new consumer at once (its previous consumer
        # left), or after the message timeout at the latest.
        assert await nothing_within(second, TIMEOUT * 3)
    finally:
        await second.stop()


async def test_nacks_carry_the_subscription_id_too(esdb: EventStoreDBStore) -> None:
    stream, group = unique("nack"), unique("g")
    await esdb.append(stream, events(1), NO_STREAM)
    await esdb.groups.create_subscription(group, stream=stream, settings=FAST)
    sub = await esdb.groups.read_subscription(group, stream=stream)
    try:
        event = await receive(sub)
        await sub.nack(event, NackAction.PARK)
        deadline = asyncio.get_running_loop().time() + WAIT
        while (await esdb.groups.get_subscription_info(group, stream=stream)).parked != 1:
            assert asyncio.get_running_loop().time() < deadline, "never parked"
            await asyncio.sleep(0.05)
        parked = await esdb.groups.list_parked(group, stream=stream)
        assert [(e.id, e.version) for e in parked] == [(event.id, 1)]
        assert parked[0].ack_id is not None
        assert parked[0].ack_id != event.id  # the parked link's id
        assert await nothing_within(sub, TIMEOUT * 2)
    finally:
        await sub.stop()


async def test_a_cancelled_wait_leaves_the_consumer_working(esdb: EventStoreDBStore) -> None:
    """esdbclient ends a subscription whose await is cancelled; the adapter's consumer survives."""
    stream, group = unique("wait"), unique("g")
    await esdb.groups.create_subscription(group, stream=stream, settings=FAST)
    sub = await esdb.groups.read_subscription(group, stream=stream)
    try:
        assert await nothing_within(sub, 0.2)
        await esdb.append(stream, events(1), NO_STREAM)
        event = await receive(sub)
        assert (event.stream, event.version, event.retry_count) == (stream, 1, 0)
        await sub.ack(event)
    finally:
        await sub.stop()


async def test_a_cancelled_consumer_task_is_cancelled(esdb: EventStoreDBStore) -> None:
    stream, group = unique("cancel"), unique("g")
    await esdb.groups.create_subscription(group, stream=stream, settings=FAST)
    sub = await esdb.groups.read_subscription(group, stream=stream)

    async def consume() -> None:
        async for event in sub:
            await sub.ack(event)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    await sub.stop()
