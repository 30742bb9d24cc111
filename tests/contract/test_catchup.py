"""Contract: catch-up subscriptions — history after an exclusive start, then live, exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from eventstore.port import NO_STREAM, EventFilter, EventStore, ExpectedVersion, RecordedEvent
from tests.contract.conftest import closing, new_events, unique_stream

WAIT = 10.0  # a bound for what should happen promptly, not a speed expectation


async def take(subscription: AsyncIterator[RecordedEvent], count: int) -> list[RecordedEvent]:
    async def collect() -> list[RecordedEvent]:
        return [await anext(subscription) for _ in range(count)]

    return await asyncio.wait_for(collect(), WAIT)


async def append_one_by_one(store: EventStore, stream: str, start: int, count: int) -> None:
    expected: ExpectedVersion = NO_STREAM if start == 0 else start
    for index in range(count):
        result = await store.append(stream, new_events(1, start=start + index), expected)
        expected = result.version


async def test_stream_history_then_live(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(3), NO_STREAM)
    async with closing(store.subscribe_stream(stream)) as subscription:
        history = await take(subscription, 3)
        assert [e.version for e in history] == [1, 2, 3]
        await store.append(stream, new_events(2, start=3), 3)
        live = await take(subscription, 2)
        assert [e.version for e in live] == [4, 5]
        assert [e.data for e in live] == [b'{"n": 3}', b'{"n": 4}']


async def test_stream_start_is_exclusive(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(5), NO_STREAM)
    async with closing(store.subscribe_stream(stream, after_version=3)) as subscription:
        assert [e.version for e in await take(subscription, 2)] == [4, 5]


async def test_a_stream_that_does_not_exist_yet_goes_live(store: EventStore) -> None:
    stream = unique_stream()
    async with closing(store.subscribe_stream(stream)) as subscription:
        pending = asyncio.ensure_future(take(subscription, 2))
        await asyncio.sleep(0.05)
        await store.append(stream, new_events(2), NO_STREAM)
        assert [e.version for e in await pending] == [1, 2]


async def test_mid_stream_subscriber_gets_each_event_once_in_order_while_appends_race(
    store: EventStore,
) -> None:
    stream = unique_stream()
    await append_one_by_one(store, stream, 0, 20)
    async with closing(store.subscribe_stream(stream, after_version=10)) as subscription:
        writer = asyncio.ensure_future(append_one_by_one(store, stream, 20, 80))
        received = await take(subscription, 90)
        await writer
    assert [e.version for e in received] == list(range(11, 101))
    assert [e.data for e in received] == [b'{"n": %d}' % n for n in range(10, 100)]


async def test_all_history_then_live_with_a_filter(store: EventStore) -> None:
    prefix = f"suball{uuid.uuid4().hex}"
    mine, other = f"{prefix}-1", unique_stream()
    await store.append(mine, new_events(2), NO_STREAM)
    await store.append(other, new_events(2), NO_STREAM)
    start = (await store.read_stream(mine))[0].position - 1
    selection = EventFilter(stream_prefixes=(prefix,))
    async with closing(store.subscribe_all(after_position=start, filter=selection)) as subscription:
        history = await take(subscription, 2)
        assert [(e.stream, e.version) for e in history] == [(mine, 1), (mine, 2)]
        await store.append(other, new_events(3), 2)
        await store.append(mine, new_events(1), 2)
        [live] = await take(subscription, 1)
        assert (live.stream, live.version) == (mine, 3)
        assert live.position > history[-1].position


async def test_all_start_is_exclusive_and_racing_appends_arrive_once_in_order(
    store: EventStore,
) -> None:
    prefix = f"suballrace{uuid.uuid4().hex}"
    streams = [f"{prefix}-{n}" for n in range(3)]
    for stream in streams:
        await store.append(stream, new_events(5), NO_STREAM)
    history = await store.read_all(filter=EventFilter(stream_prefixes=(prefix,)))
    after = history[6].position
    selection = EventFilter(stream_prefixes=(prefix,))

    async def race() -> None:
        for round_ in range(20):
            for stream in streams:
                await store.append(stream, new_events(1, start=round_), 5 + round_)

    async with closing(store.subscribe_all(after_position=after, filter=selection)) as subscription:
        writer = asyncio.ensure_future(race())
        received = await take(subscription, 8 + 60)
        await writer
    expected = await store.read_all(from_position=after + 1, filter=selection)
    assert [e.id for e in received] == [e.id for e in expected]
    positions = [e.position for e in received]
    assert positions == sorted(set(positions))
    assert received[0] == history[7]


async def test_closing_a_live_subscription_leaves_the_store_working(store: EventStore) -> None:
    stream = unique_stream()
    subscription = store.subscribe_stream(stream)
    async with closing(subscription):
        waiting = asyncio.ensure_future(anext(subscription))
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
    await store.append(stream, new_events(1), NO_STREAM)
    async with closing(store.subscribe_stream(stream)) as again:
        assert [e.version for e in await take(again, 1)] == [1]
