"""Contract: persistent subscriptions, with EventStoreDB's semantics, on every adapter.

Every test uses its own streams and groups (and `$all` groups filter on a unique stream prefix), so
the suite also runs against a shared server. Timeouts are small so the file runs in seconds.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable

import pytest

from eventstore.port import (
    NO_STREAM,
    ConsumerStrategy,
    EventFilter,
    MaxSubscribersReached,
    NackAction,
    NewEvent,
    PersistentSubscription,
    RecordedEvent,
    StoreWithGroups,
    SubscriptionDropped,
    SubscriptionGroupExists,
    SubscriptionGroupNotFound,
    SubscriptionSettings,
)

FAST = SubscriptionSettings(
    message_timeout=0.4, max_retry_count=2, checkpoint_after=0.1, min_checkpoint_count=1
)
WAIT = 5.0  # generous bound for anything that should happen promptly


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_events(count: int, event_type: str = "Tested") -> list[NewEvent]:
    return [NewEvent(id=uuid.uuid4(), type=event_type, data=b'{"n": %d}' % i) for i in range(count)]


async def append(
    store: StoreWithGroups, stream: str, count: int, event_type: str = "Tested"
) -> None:
    await store.append(stream, new_events(count, event_type), NO_STREAM)


async def receive(sub: PersistentSubscription, within: float = WAIT) -> RecordedEvent:
    return await asyncio.wait_for(anext(aiter(sub)), within)


async def receive_many(sub: PersistentSubscription, count: int) -> list[RecordedEvent]:
    return [await receive(sub) for _ in range(count)]


async def assert_quiet(sub: PersistentSubscription, seconds: float) -> None:
    with pytest.raises(TimeoutError):
        await receive(sub, seconds)


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_create_info_list_update_delete(store: StoreWithGroups) -> None:
    stream, group = unique("ps-crud"), unique("g")
    await store.groups.create_subscription(group, stream=stream, settings=FAST)

    info = await store.groups.get_subscription_info(group, stream=stream)
    assert (info.group, info.stream, info.parked, info.connections) == (group, stream, 0, 0)
    assert info.settings.max_retry_count == FAST.max_retry_count
    assert info.checkpoint is None
    assert [i.group for i in await store.groups.list_subscriptions(stream=stream)] == [group]
    assert group in [i.group for i in await store.groups.list_subscriptions()]

    with pytest.raises(SubscriptionGroupExists):
        await store.groups.create_subscription(group, stream=stream, settings=FAST)

    changed = SubscriptionSettings(message_timeout=1.5, max_retry_count=7)
    await store.groups.update_subscription(group, stream=stream, settings=changed)
    info = await store.groups.get_subscription_info(group, stream=stream)
    assert (info.settings.max_retry_count, info.settings.message_timeout) == (7, 1.5)

    await store.groups.delete_subscription(group, stream=stream)
    assert await store.groups.list_subscriptions(stream=stream) == []
    with pytest.raises(SubscriptionGroupNotFound):
        await store.groups.get_subscription_info(group, stream=stream)
    with pytest.raises(SubscriptionGroupNotFound):
        await store.groups.delete_subscription(group, stream=stream)
    with pytest.raises(SubscriptionGroupNotFound):
        await store.groups.update_subscription(group, stream=stream, settings=FAST)
    with pytest.raises(SubscriptionGroupNotFound):
        await store.groups.read_subscription(group, stream=stream)


async def test_groups_on_all_and_on_a_stream_are_distinct(store: StoreWithGroups) -> None:
    stream, group = unique("ps-distinct"), unique("g")
    await store.groups.create_subscription(group, stream=stream, settings=FAST)
    with pytest.raises(SubscriptionGroupNotFound):
        await store.groups.get_subscription_info(group)
    await store.groups.create_subscription(group, settings=FAST)
    assert (await store.groups.get_subscription_info(group)).stream is None
    await store.groups.delete_subscription(group)
    await store.groups.delete_subscription(group, stream=stream)


async def test_stream_group_starts_inclusive_then_goes_live(store: StoreWithGroups) -> None:
    stream, group = unique("ps-start"), unique("g")
    await append(store, stream, 5)
    settings = SubscriptionSettings(start_from=3, message_timeout=FAST.message_timeout)
    await store.groups.create_subscription(group, stream=stream, settings=settings)
    sub = await store.groups.read_subscription(group, stream=stream)
    got = await receive_many(sub, 3)
    assert [e.version for e in got] == [3, 4, 5]
    assert all(e.retry_count == 0 and e.ack_id == e.id for e in got)
    for event in got:
        await sub.ack(event)

    await store.append(stream, new_events(1), 5)
    live = await receive(sub)
    assert (live.stream, live.version) == (stream, 6)
    await sub.ack(live)
    await sub.stop()


async def test_from_end_delivers_only_new_events(store: StoreWithGroups) -> None:
    stream, group = unique("ps-end"), unique("g")
    await append(store, stream, 2)
    await store.groups.create_subscription(
        group, stream=stream, settings=SubscriptionSettings(from_end=True)
    )
    sub = await store.groups.read_subscription(group, stream=stream)
    await store.append(stream, new_events(1), 2)
    event = await receive(sub)
    assert event.version == 3
    await sub.ack(event)
    await sub.stop()


async def test_all_group_filters_and_starts_inclusive_at_a_position(store: StoreWithGroups) -> None:
    prefix = unique("ps-all")
    wanted, other = f"{prefix}-a", f"{prefix}-b"
    await append(store, wanted, 3)
    await append(store, other, 2, event_type="Ignored")
    events = await store.read_stream(wanted)
    settings = SubscriptionSettings(
        start_from=events[1].position,
        filter=EventFilter(stream_prefixes=(prefix,), event_types=("Tested",)),
    )
    group = unique("g")
    await store.groups.create_subscription(group, settings=settings)
    sub = await store.groups.read_subscription(group)
    got = await receive_many(sub, 2)
    assert [(e.stream, e.version) for e in got] == [(wanted, 2), (wanted, 3)]
    for event in got:
        await sub.ack(event)
    await assert_quiet(sub, 0.3)
    await sub.stop()
    await store.groups.delete_subscription(group)


async def test_ack_stops_redelivery_past_the_message_timeout(store: StoreWithGroups) -> None:
    stream, group = unique("ps-ack"), unique("g")
    await append(store, stream, 2)
    await store.groups.create_subscription(group, stream=stream, settings=FAST)
    sub = await store.groups.read_subscription(group, stream=stream)
    for event in await receive_many(sub, 2):
        await sub.ack(event)
    await assert_quiet(sub, FAST.message_timeout * 3)

    async def checkpointed() -> bool:
        return (await store.groups.get_subscription_info(group, stream=stream)).checkpoint == 2

    await eventually(checkpointed)
    await sub.stop()


async def test_timeout_redelivers_with_growing_retry_count_then_parks(
    store: StoreWithGroups,
) -> None:
    stream, group = unique("ps-timeout"), unique("g")
    await append(store, stream, 1)
    await store.groups.create_subscription(group, stream=stream, settings=FAST)
    sub = await store.groups.read_subscription(group, stream=stream)
    # Never acknowledged: delivered max_retry_count + 1 times, then parked.
    got = await receive_many(sub, FAST.max_retry_count + 1)
    assert [e.retry_count for e in got] == list(range(FAST.max_retry_count + 1))
    assert len({e.id for e in got}) == 1
    await assert_quiet(sub, FAST.message_timeout * 3)

    parked = await store.groups.list_parked(group, stream=stream)
    assert [(e.id, e.version) for e in parked] == [(got[0].id, 1)]
    assert (await store.groups.get_subscription_info(group, stream=stream)).parked == 1
    await sub.stop()


async def test_nack_retry_park_and_skip(store: StoreWithGroups) -> None:
    stream, group = unique("ps-nack"), unique("g")
    await append(store, stream, 3)
    await store.groups.create_subscription(group, stream=stream, settings=FAST)
    sub = await store.groups.read_subscription(group, stream=stream)
    first, second, third = await receive_many(sub, 3)

    await sub.nack(first, NackAction.RETRY)
    again = await receive(sub)
    assert (again.id, again.retry_count) == (first.id, 1)
    await sub.ack(again)

    await sub.nack(second, NackAction.PARK)
    await sub.nack(third, NackAction.SKIP)
    await assert_quiet(sub, FAST.message_timeout * 3)
    assert [e.id for e in await store.groups.list_parked(group, stream=stream)] == [second.id]
    await sub.stop()


async def test_nack_retry_past_max_parks(store: StoreWithGroups) -> None:
    stream, group = unique("ps-maxretry"), unique("g")
    await append(store, stream, 1)
    await store.groups.create_subscription(group, stream=stream, settings=FAST)
    sub = await store.groups.read_subscription(group, stream=stream)
    counts = []
    for _ in range(FAST.max_retry_count + 1):
        event = await receive(sub)
        counts.append(event.retry_count)
        await sub.nack(event, NackAction.RETRY)
    assert counts == [0, 1, 2]

    async def parked() -> bool:
        return (await store.groups.get_subscription_info(group, stream=stream)).parked == 1

    await eventually(parked)
    await sub.stop()


async def test_replay_parked_goes_ahead_of_new_events(store: StoreWithGroups) -> None:
    stream, group = unique("ps-replay"), unique("g")
    await append(store, stream, 3)
    await store.groups.create_subscription(group, stream=stream, settings=FAST)
    sub = await store.groups.read_subscription(group, stream=stream, buffer_size=1)
    first = await receive(sub)
    await sub.nack(first, NackAction.PARK)
    second = await receive(sub)
    await sub.nack(second, NackAction.PARK)
    third = await receive(sub)  # held: the consumer's one slot stays busy
    await store.append(stream, new_events(1), 3)

    async def both_parked() -> bool:
        return (await store.groups.get_subscription_info(group, stream=stream)).parked == 2

    await eventually(both_parked)
    await store.groups.replay_parked(group, stream=stream)
    await sub.ack(third)
    replayed = []
    for _ in range(2):
        event = await receive(sub)
        assert event.ack_id is not None
        # The consumer's one slot is taken until this replayed event is acknowledged.
        await assert_quiet(sub, 0.1)
        replayed.append(event)
        await sub.ack(event)
    assert {e.id for e in replayed} == {first.id, second.id}
    newest = await receive(sub)
    assert newest.version == 4
    await sub.ack(newest)
    assert await store.groups.list_parked(group, stream=stream) == []
    assert (await store.groups.get_subscription_info(group, stream=stream)).parked == 0
    await assert_quiet(sub, FAST.message_timeout * 2)
    await sub.stop()


async def collect(
    sub: PersistentSubscription, into: list[RecordedEvent], total: list[RecordedEvent], want: int
) -> None:
    while len(total) < want:
        try:
            event = await receive(sub, 0.2)
        except TimeoutError:
            continue
        into.append(event)
        total.append(event)
        await sub.ack(event)


async def test_round_robin_shares_events_between_consumers(store: StoreWithGroups) -> None:
    stream, group = unique("ps-rr"), unique("g")
    settings = SubscriptionSettings(consumer_strategy=ConsumerStrategy.ROUND_ROBIN)
    await store.groups.create_subscription(group, stream=stream, settings=settings)
    one = await store.groups.read_subscription(group, stream=stream)
    two = await store.groups.read_subscription(group, stream=stream)
    await append(store, stream, 10)
    got_one: list[RecordedEvent] = []
    got_two: list[RecordedEvent] = []
    total: list[RecordedEvent] = []
    await asyncio.wait_for(
        asyncio.gather(collect(one, got_one, total, 10), collect(two, got_two, total, 10)), WAIT
    )
    assert sorted(e.version for e in total) == list(range(1, 11))
    assert got_one
    assert got_two
    await one.stop()
    await two.stop()


async def test_pinned_keeps_each_stream_with_one_consumer(store: StoreWithGroups) -> None:
    prefix = unique("ps-pin")
    group = unique("g")
    settings = SubscriptionSettings(
        consumer_strategy=ConsumerStrategy.PINNED, filter=EventFilter(stream_prefixes=(prefix,))
    )
    await store.groups.create_subscription(group, settings=settings)
    one = await store.groups.read_subscription(group)
    two = await store.groups.read_subscription(group)
    streams = [f"{prefix}-{n}" for n in range(6)]
    for round_ in range(3):
        for stream in streams:
            await store.append(stream, new_events(1), NO_STREAM if round_ == 0 else round_)
    got_one: list[RecordedEvent] = []
    got_two: list[RecordedEvent] = []
    total: list[RecordedEvent] = []
    await asyncio.wait_for(
        asyncio.gather(collect(one, got_one, total, 18), collect(two, got_two, total, 18)), WAIT
    )
    assert len({e.id for e in total}) == 18
    assert not {e.stream for e in got_one} & {e.stream for e in got_two}
    await one.stop()
    await two.stop()
    await store.groups.delete_subscription(group)


async def test_a_leaving_consumer_hands_its_events_to_another(store: StoreWithGroups) -> None:
    stream, group = unique("ps-leave"), unique("g")
    settings = SubscriptionSettings(consumer_strategy=ConsumerStrategy.DISPATCH_TO_SINGLE)
    await store.groups.create_subscription(group, stream=stream, settings=settings)
    leaving = await store.groups.read_subscription(group, stream=stream)
    await append(store, stream, 1)
    first = await receive(leaving)
    staying = await store.groups.read_subscription(group, stream=stream)
    await leaving.stop()
    again = await receive(staying)
    assert (again.id, again.retry_count) == (first.id, 1)
    await staying.ack(again)
    await staying.stop()


async def test_max_subscriber_count(store: StoreWithGroups) -> None:
    stream, group = unique("ps-max"), unique("g")
    await store.groups.create_subscription(
        group, stream=stream, settings=SubscriptionSettings(max_subscriber_count=1)
    )
    first = await store.groups.read_subscription(group, stream=stream)
    with pytest.raises(MaxSubscribersReached):
        await store.groups.read_subscription(group, stream=stream)
    assert (await store.groups.get_subscription_info(group, stream=stream)).connections == 1
    await first.stop()

    async def connections_gone() -> bool:
        return (await store.groups.get_subscription_info(group, stream=stream)).connections == 0

    await eventually(connections_gone)
    second = await store.groups.read_subscription(group, stream=stream)
    await second.stop()


async def test_deleting_a_group_drops_its_consumers(store: StoreWithGroups) -> None:
    stream, group = unique("ps-drop"), unique("g")
    await store.groups.create_subscription(group, stream=stream, settings=FAST)
    sub = await store.groups.read_subscription(group, stream=stream)
    await store.groups.delete_subscription(group, stream=stream)
    with pytest.raises(SubscriptionDropped):
        await receive(sub)
    await sub.stop()


async def test_many_events_through_a_small_buffer_arrive_once(store: StoreWithGroups) -> None:
    stream, group = unique("ps-many"), unique("g")
    await store.append(stream, new_events(700), NO_STREAM)
    await store.groups.create_subscription(group, stream=stream, settings=FAST)
    sub = await store.groups.read_subscription(group, stream=stream, buffer_size=10)
    seen = []
    for _ in range(700):
        event = await receive(sub)
        seen.append(event.version)
        await sub.ack(event)
    assert sorted(seen) == list(range(1, 701))
    await assert_quiet(sub, FAST.message_timeout * 2)
    await sub.stop()


async def test_pinned_by_correlation_keeps_each_correlation_with_one_consumer(
    store: StoreWithGroups,
) -> None:
    prefix = unique("ps-corr")
    group = unique("g")
    settings = SubscriptionSettings(
        consumer_strategy=ConsumerStrategy.PINNED_BY_CORRELATION,
        filter=EventFilter(stream_prefixes=(prefix,)),
    )
    await store.groups.create_subscription(group, settings=settings)
    info = await store.groups.get_subscription_info(group)
    assert info.settings.consumer_strategy is ConsumerStrategy.PINNED_BY_CORRELATION
    one = await store.groups.read_subscription(group)
    two = await store.groups.read_subscription(group)
    # Twelve streams, three correlations each spread over four of them.
    for n in range(12):
        metadata = b'{"$correlationId": "c-%d"}' % (n % 3)
        event = NewEvent(id=uuid.uuid4(), type="Tested", data=b"{}", metadata=metadata)
        await store.append(f"{prefix}-{n}", [event], NO_STREAM)
    got_one: list[RecordedEvent] = []
    got_two: list[RecordedEvent] = []
    total: list[RecordedEvent] = []
    await asyncio.wait_for(
        asyncio.gather(collect(one, got_one, total, 12), collect(two, got_two, total, 12)), WAIT
    )

    def correlations(events: list[RecordedEvent]) -> set[str]:
        return {json.loads(e.metadata)["$correlationId"] for e in events}

    assert len({e.id for e in total}) == 12
    assert not correlations(got_one) & correlations(got_two)
    await one.stop()
    await two.stop()
    await store.groups.delete_subscription(group)
