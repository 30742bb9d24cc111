"""The group-worker skeleton the projector and the relay share (`eventstore.group_worker`), on a
real subscription of the embedded store: batches hold what has arrived (at most `size`), a stop
comes after what was delivered before it, and the back-off doubles to its cap and starts over."""

from __future__ import annotations

import asyncio

from eventstore.embedded import SQLiteEventStore
from eventstore.group_worker import Backoff, Batches
from eventstore.port import NO_STREAM, EventFilter, SubscriptionSettings
from tests.contract.conftest import new_events, unique_stream

GROUP = "skeleton"


async def _subscribed(store: SQLiteEventStore, prefix: str, count: int) -> None:
    await store.append(unique_stream(prefix), new_events(count), NO_STREAM)
    settings = SubscriptionSettings(filter=EventFilter(stream_prefixes=(prefix,)))
    await store.groups.create_subscription(GROUP, settings=settings)


async def test_batches_hold_what_arrived_up_to_their_size(store: SQLiteEventStore) -> None:
    await _subscribed(store, "batched-", 7)
    subscription = await store.groups.read_subscription(GROUP)
    stop = asyncio.Event()
    try:
        async with Batches(subscription, stop, size=3, name="test-reader") as batches:
            seen: list[int] = []
            while len(seen) < 7:
                batch = await batches.next()
                assert not batch.stopped
                assert batch.error is None
                assert 1 <= len(batch.events) <= 3
                seen += [event.version for event in batch.events]
                for event in batch.events:
                    await subscription.ack(event)
            assert seen == list(range(1, 8))  # in delivery order, none twice
            assert await batches.next_within(0.05) is None  # nothing more: the wait times out
    finally:
        await subscription.stop()


async def test_a_stop_comes_after_what_was_delivered_before_it(store: SQLiteEventStore) -> None:
    await _subscribed(store, "stopped-", 4)
    subscription = await store.groups.read_subscription(GROUP)
    stop = asyncio.Event()
    try:
        async with Batches(subscription, stop, size=100, name="test-reader") as batches:
            first = await batches.next()
            delivered = len(first.events)
            while delivered < 4:
                delivered += len((await batches.next()).events)
            stop.set()
            last = await batches.next()
            assert last.stopped
            assert last.events == []  # everything before the stop was handed out already
    finally:
        await subscription.stop()


async def test_the_end_of_a_subscription_is_handed_over(store: SQLiteEventStore) -> None:
    await _subscribed(store, "ended-", 1)
    subscription = await store.groups.read_subscription(GROUP)
    stop = asyncio.Event()
    async with Batches(subscription, stop, size=10, name="test-reader") as batches:
        assert len((await batches.next()).events) == 1
        await subscription.stop()  # ends it from outside, as a dropped connection would
        ended = await batches.next()
        assert ended.error is not None  # the end, for the worker to raise (never a quiet one)
        assert not ended.stopped


async def test_the_back_off_doubles_to_its_cap_and_starts_over() -> None:
    backoff = Backoff(0.001, 0.004)
    stop = asyncio.Event()
    assert backoff.first_failure
    waits = []
    for _ in range(4):
        waits.append(backoff.delay)
        await backoff.wait(stop)
        assert not backoff.first_failure
    assert waits == [0.001, 0.002, 0.004, 0.004]
    backoff.reset()
    assert backoff.first_failure
    assert backoff.delay == 0.001


async def test_a_stop_cuts_the_back_off_short() -> None:
    backoff = Backoff(60.0, 60.0)
    stop = asyncio.Event()
    stop.set()
    async with asyncio.timeout(5):  # far less than the minute it would wait
        await backoff.wait(stop)
