"""Persistent-subscription groups shared by several stores (as processes would) on one database:
one leads and delivers, the others stand by; group state (definitions, checkpoints, parked events)
is PostgreSQL's, so a standby takes over from the leader's checkpoint."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from eventstore.port import (
    NO_STREAM,
    EventStoreError,
    NackAction,
    PersistentSubscription,
    RecordedEvent,
    SubscriptionSettings,
)
from eventstore.postgres import PostgresEventStore, persistent
from tests.contract.conftest import new_events
from tests.postgres_db import session_database_url

SETTINGS = SubscriptionSettings(
    message_timeout=5.0, checkpoint_after=0.1, min_checkpoint_count=1, max_checkpoint_count=1
)


@pytest.fixture
async def two_stores(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[PostgresEventStore]]:
    monkeypatch.setattr(persistent, "STANDBY_POLL", 0.1)
    url = await session_database_url()
    stores = [await PostgresEventStore.open(url, pool_size=3) for _ in range(2)]
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()


async def drain(sub: PersistentSubscription, seconds: float) -> list[RecordedEvent]:
    got: list[RecordedEvent] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            got.append(await asyncio.wait_for(anext(aiter(sub)), left))
        except TimeoutError:
            break
    return got


async def test_one_store_leads_a_group_and_another_takes_over_from_its_checkpoint(
    two_stores: list[PostgresEventStore],
) -> None:
    first, second = two_stores
    stream, group = f"shared-{uuid.uuid4().hex}", f"g-{uuid.uuid4().hex[:8]}"
    await first.groups.create_subscription(group, stream=stream, settings=SETTINGS)
    # The group made by one store is the other's too.
    assert (await second.groups.get_subscription_info(group, stream=stream)).group == group
    one = await first.groups.read_subscription(group, stream=stream)
    await asyncio.sleep(0.3)  # the first store takes the lead
    two = await second.groups.read_subscription(group, stream=stream)
    await first.append(stream, new_events(10), NO_STREAM)

    led = await drain(one, 1.5)
    assert [e.version for e in led] == list(range(1, 11))
    assert await drain(two, 0.3) == []  # the standby delivers nothing meanwhile

    for event in led[:6]:
        await one.ack(event)
    await one.nack(led[6], NackAction.PARK)

    async def checkpoint() -> int | None:
        return (await second.groups.get_subscription_info(group, stream=stream)).checkpoint

    for _ in range(100):
        if await checkpoint() == 7:
            break
        await asyncio.sleep(0.05)
    assert await checkpoint() == 7
    assert [e.version for e in await second.groups.list_parked(group, stream=stream)] == [7]
    # Only the leader can deliver a replay: the standby refuses and the event stays parked.
    with pytest.raises(EventStoreError, match="another process"):
        await second.groups.replay_parked(group, stream=stream)
    assert (await first.groups.get_subscription_info(group, stream=stream)).parked == 1

    await first.close()  # the leader goes away; its lock goes with its connection
    await second.append(stream, new_events(2), 10)
    taken = await drain(two, 3.0)
    # Unacked 8..10 again (at-least-once), then the new ones; nothing acked before comes back.
    assert [e.version for e in taken] == [8, 9, 10, 11, 12]
    for event in taken:
        await two.ack(event)
    await two.stop()
