"""Persistent-subscription groups shared by several stores (as processes would) on one database:
each store with consumers is a member, the group's partitions are split among the members, and
group state (definitions, partition checkpoints, parked events, members) is PostgreSQL's, so a
member takes over another's partitions from their checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest

from eventstore.persistent.groups import GroupDeleted, GroupUpdated
from eventstore.port import (
    NO_STREAM,
    ConsumerStrategy,
    EventFilter,
    MaxSubscribersReached,
    NackAction,
    PersistentSubscription,
    RecordedEvent,
    SubscriptionSettings,
)
from eventstore.postgres import PostgresEventStore, persistent
from eventstore.postgres.persistent import PostgresPersistentSubscriptions, assign
from eventstore.postgres.persistent_tables import PARTITIONS, partition_key, partition_of
from tests.contract.conftest import new_events
from tests.support.postgres_db import session_database_url
from tests.support.processes import REPO_ROOT

SETTINGS = SubscriptionSettings(
    message_timeout=5.0, checkpoint_after=0.1, min_checkpoint_count=1, max_checkpoint_count=1
)


def pinned(prefix: str, max_subscriber_count: int = 0) -> SubscriptionSettings:
    """A group on $all that sees only this test's streams."""
    return dataclasses.replace(
        SETTINGS,
        filter=EventFilter(stream_prefixes=(prefix,)),
        consumer_strategy=ConsumerStrategy.PINNED,
        max_subscriber_count=max_subscriber_count,
    )


@pytest.fixture
async def two_stores(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[PostgresEventStore]]:
    monkeypatch.setattr(persistent, "HEARTBEAT", 0.1)
    url = await session_database_url()
    stores = [await PostgresEventStore.open(url, pool_size=3) for _ in range(2)]
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()


def owned(store: PostgresEventStore, group: str) -> frozenset[int]:
    groups = store.groups
    assert isinstance(groups, PostgresPersistentSubscriptions)
    shared = groups._shared.get(("$all", group))
    return frozenset() if shared is None else shared.owned


async def eventually(check: Callable[[], Awaitable[bool] | bool], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert loop.time() < deadline, "never became true"
        await asyncio.sleep(0.05)


async def drain(
    sub: PersistentSubscription, seconds: float, *, ack: bool = False
) -> list[RecordedEvent]:
    got: list[RecordedEvent] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            event = await asyncio.wait_for(anext(aiter(sub)), left)
        except TimeoutError:
            break
        got.append(event)
        if ack:
            await sub.ack(event)
    return got


async def split_between(stores: list[PostgresEventStore], group: str) -> None:
    """Wait until the members hold every partition between them, each some."""

    def split() -> bool:
        parts = [owned(store, group) for store in stores]
        return all(parts) and sum(len(p) for p in parts) == PARTITIONS

    await eventually(split)
    assert not owned(stores[0], group) & owned(stores[1], group)


def test_the_assignment_is_balanced_and_the_same_for_every_member() -> None:
    owners = assign(range(16), ["b", "a"])
    assert owners == assign(range(16), ["a", "b", "a"])
    assert sorted(list(owners.values()).count(m) for m in "ab") == [8, 8]
    three = assign(range(16), ["a", "b", "c"])
    assert max(list(three.values()).count(m) for m in "abc") == 6
    # A member joining takes partitions from the others; none moves between the others.
    moved = [p for p in range(16) if three[p] != owners[p] and three[p] != "c"]
    assert len(moved) <= 2


def test_a_group_pinned_by_correlation_is_partitioned_by_it() -> None:
    meta = orjson.dumps({"$correlationId": "c-1"})
    by_correlation = ConsumerStrategy.PINNED_BY_CORRELATION
    assert partition_key(by_correlation, "order-1", meta) == "c-1"
    assert partition_key(by_correlation, "order-1", b"not json") == "order-1"
    assert partition_key(by_correlation, "order-1", b"[1]") == "order-1"
    assert partition_key(ConsumerStrategy.PINNED, "order-1", meta) == "order-1"


async def test_two_members_share_a_group_and_one_takes_over_when_the_other_leaves(
    two_stores: list[PostgresEventStore],
) -> None:
    first, second = two_stores
    prefix = f"share-{uuid.uuid4().hex[:8]}-"
    group = f"g-{uuid.uuid4().hex[:8]}"
    await first.groups.create_subscription(group, settings=pinned(prefix))
    one = await first.groups.read_subscription(group, buffer_size=500)
    two = await second.groups.read_subscription(group, buffer_size=500)
    await split_between(two_stores, group)
    info = await first.groups.get_subscription_info(group)
    assert info.connections == 2

    streams = [f"{prefix}{n}" for n in range(100)]
    await asyncio.gather(*(first.append(s, new_events(2), NO_STREAM) for s in streams))
    got_one, got_two = await asyncio.gather(drain(one, 2.0, ack=True), drain(two, 2.0, ack=True))
    by_one, by_two = {e.stream for e in got_one}, {e.stream for e in got_two}
    # Each member delivered the streams of its own partitions, every event once, in order.
    assert not by_one & by_two
    assert by_one | by_two == set(streams)
    assert len(by_one) >= 20
    assert len(by_two) >= 20
    assert len(got_one) + len(got_two) == 200
    assert {partition_of(s, PARTITIONS) for s in by_one} <= owned(first, group)
    for got in (got_one, got_two):
        versions: dict[str, list[int]] = {}
        for event in got:
            versions.setdefault(event.stream, []).append(event.version)
        assert all(v == [1, 2] for v in versions.values())

    async def checkpointed() -> bool:
        head = max(e.position for e in got_one + got_two)
        return (await second.groups.get_subscription_info(group)).checkpoint == head

    await eventually(checkpointed)

    await first.close()  # a member leaves: its partitions' checkpoints are stored, its locks go
    await asyncio.gather(*(second.append(s, new_events(1), 2) for s in streams))
    taken = await drain(two, 3.0, ack=True)
    # The new events of every stream, and nothing acknowledged before.
    assert sorted(e.stream for e in taken) == sorted(streams)
    assert {e.version for e in taken} == {3}
    assert owned(second, group) == frozenset(range(PARTITIONS))
    await two.stop()


async def test_max_subscriber_count_counts_every_member(
    two_stores: list[PostgresEventStore],
) -> None:
    first, second = two_stores
    group = f"g-{uuid.uuid4().hex[:8]}"
    prefix = f"max-{uuid.uuid4().hex[:8]}-"
    await first.groups.create_subscription(group, settings=pinned(prefix, max_subscriber_count=2))
    one = await first.groups.read_subscription(group)
    two = await second.groups.read_subscription(group)
    for store in two_stores:
        with pytest.raises(MaxSubscribersReached):
            await store.groups.read_subscription(group)
    assert (await second.groups.get_subscription_info(group)).connections == 2
    await one.stop()
    again = await second.groups.read_subscription(group)
    assert (await first.groups.get_subscription_info(group)).connections == 2
    await again.stop()
    await two.stop()


async def test_replay_parked_from_a_member_that_owns_none_of_the_events(
    two_stores: list[PostgresEventStore],
) -> None:
    first, second = two_stores
    prefix = f"replay-{uuid.uuid4().hex[:8]}-"
    group = f"g-{uuid.uuid4().hex[:8]}"
    await first.groups.create_subscription(group, settings=pinned(prefix))
    one = await first.groups.read_subscription(group)
    two = await second.groups.read_subscription(group)
    await split_between(two_stores, group)
    mine = owned(first, group)
    streams = [f"{prefix}{n}" for n in range(40)]
    streams = [s for s in streams if partition_of(s, PARTITIONS) in mine][:3]
    assert streams
    await asyncio.gather(*(second.append(s, new_events(1), NO_STREAM) for s in streams))
    delivered = await drain(one, 1.5)
    assert sorted(e.stream for e in delivered) == sorted(streams)
    for event in delivered:
        await one.nack(event, NackAction.PARK)

    async def all_parked() -> bool:
        return (await second.groups.get_subscription_info(group)).parked == len(streams)

    await eventually(all_parked)
    assert not owned(second, group) & {partition_of(s, PARTITIONS) for s in streams}
    await second.groups.replay_parked(group)  # asked where none of them can be delivered
    replayed = await drain(one, 2.0, ack=True)
    assert sorted(e.id for e in replayed) == sorted(e.id for e in delivered)
    assert all(e.retry_count == 0 for e in replayed)
    assert await drain(two, 0.2) == []
    assert await second.groups.list_parked(group) == []
    await one.stop()
    await two.stop()


async def test_a_stream_group_has_one_owner_and_another_member_takes_over_from_its_checkpoint(
    two_stores: list[PostgresEventStore],
) -> None:
    first, second = two_stores
    stream, group = f"shared-{uuid.uuid4().hex}", f"g-{uuid.uuid4().hex[:8]}"
    await first.groups.create_subscription(group, stream=stream, settings=SETTINGS)
    # The group made by one store is the other's too.
    assert (await second.groups.get_subscription_info(group, stream=stream)).group == group
    one = await first.groups.read_subscription(group, stream=stream)
    two = await second.groups.read_subscription(group, stream=stream)
    await first.append(stream, new_events(10), NO_STREAM)
    led, standby = await asyncio.gather(drain(one, 1.5), drain(two, 1.5))
    if not led:
        first, second, one, two, led, standby = second, first, two, one, standby, led
    assert [e.version for e in led] == list(range(1, 11))
    assert standby == []  # the group's one partition is delivered by one member only

    for event in led[:6]:
        await one.ack(event)
    await one.nack(led[6], NackAction.PARK)

    async def checkpoint_is_7() -> bool:
        info = await second.groups.get_subscription_info(group, stream=stream)
        return info.checkpoint == 7

    await eventually(checkpoint_is_7)
    assert [e.version for e in await second.groups.list_parked(group, stream=stream)] == [7]

    await first.close()  # the owner goes away; its lock goes with its connection
    await second.append(stream, new_events(2), 10)
    taken = await drain(two, 3.0)
    # Unacked 8..10 again (at-least-once), then the new ones; nothing acked before comes back.
    assert [e.version for e in taken] == [8, 9, 10, 11, 12]
    for event in taken:
        await two.ack(event)
    await second.groups.replay_parked(group, stream=stream)
    assert [e.version for e in await drain(two, 1.0)] == [7]
    await two.stop()


async def test_a_member_process_counts_for_the_limit_replays_when_asked_elsewhere_and_is_replaced(
    two_stores: list[PostgresEventStore],
) -> None:
    store = two_stores[0]
    await two_stores[1].close()
    prefix = f"proc-{uuid.uuid4().hex[:8]}-"
    group = f"g-{uuid.uuid4().hex[:8]}"
    await store.groups.create_subscription(group, settings=pinned(prefix, max_subscriber_count=2))
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.postgres._member", store.dsn, group, "1",
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    lines: list[str] = []

    async def read() -> None:
        assert child.stdout is not None
        async for line in child.stdout:
            lines.append(line.decode().strip())

    reader = asyncio.create_task(read())
    try:
        await eventually(lambda: "ready" in lines, within=30)
        mine = await store.groups.read_subscription(group)
        # The child's consumer and this one: the limit of two holds across the processes.
        with pytest.raises(MaxSubscribersReached):
            await store.groups.read_subscription(group)
        await eventually(lambda: len(owned(store, group)) == PARTITIONS // 2)
        theirs = [
            s
            for s in (f"{prefix}{n}" for n in range(60))
            if partition_of(s, PARTITIONS) not in owned(store, group)
        ][:3]
        await asyncio.gather(*(store.append(s, new_events(1), NO_STREAM) for s in theirs))

        async def parked() -> bool:
            return (await store.groups.get_subscription_info(group)).parked == len(theirs)

        await eventually(parked)  # the child got them and parked them
        assert sorted(lines[1:]) == sorted(f"{s} 1 0" for s in theirs)
        await store.groups.replay_parked(group)  # here, where none of them can be delivered
        await eventually(lambda: len(lines) == 1 + 2 * len(theirs))
        assert sorted(lines[1 + len(theirs) :]) == sorted(f"{s} 1 0" for s in theirs)

        async def none_parked() -> bool:
            return await store.groups.list_parked(group) == []

        await eventually(none_parked)
        assert await drain(mine, 0.2) == []

        child.kill()
        await child.wait()
        # The dead member's consumer no longer counts, and its partitions are taken over.
        await eventually(lambda: len(owned(store, group)) == PARTITIONS)
        again = await store.groups.read_subscription(group)
        await again.stop()
        await mine.stop()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def test_updating_or_deleting_a_group_in_one_member_drops_the_others_consumers(
    two_stores: list[PostgresEventStore],
) -> None:
    first, second = two_stores
    prefix = f"upd-{uuid.uuid4().hex[:8]}-"
    group = f"g-{uuid.uuid4().hex[:8]}"
    await first.groups.create_subscription(group, settings=pinned(prefix))
    theirs = await second.groups.read_subscription(group)
    await first.groups.update_subscription(group, settings=pinned(prefix, max_subscriber_count=5))
    with pytest.raises(GroupUpdated):
        await asyncio.wait_for(anext(aiter(theirs)), 5.0)
    again = await second.groups.read_subscription(group)
    await first.groups.delete_subscription(group)
    with pytest.raises(GroupDeleted):
        await asyncio.wait_for(anext(aiter(again)), 5.0)
