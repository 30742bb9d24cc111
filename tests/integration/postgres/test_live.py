"""Live delivery on PostgreSQL: a NOTIFY from another process's commit wakes catch-up
subscribers; a lost notification only delays delivery (the fallback poll), never loses an event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from eventstore.port import NO_STREAM, RecordedEvent
from eventstore.postgres import PostgresEventStore
from tests.contract.conftest import closing, new_events, unique_stream
from tests.support.postgres_db import session_database_url


@pytest.fixture
async def writer_store() -> AsyncIterator[PostgresEventStore]:
    """Another process's store, as far as the subscriber's store can tell."""
    store = await PostgresEventStore.open(await session_database_url(), pool_size=2)
    try:
        yield store
    finally:
        await store.close()


async def until_live(store: PostgresEventStore) -> None:
    for _ in range(500):
        if store.live_waiters:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no subscriber went live")


async def next_of(subscription: AsyncIterator[RecordedEvent], within: float) -> RecordedEvent:
    return await asyncio.wait_for(anext(subscription), within)


async def test_a_commit_elsewhere_wakes_a_subscriber_by_notify(
    writer_store: PostgresEventStore,
) -> None:
    # With the fallback poll a minute away, only the notification can deliver in time.
    store = await PostgresEventStore.open(await session_database_url(), fallback_poll=60)
    stream = unique_stream("live")
    try:
        async with closing(store.subscribe_stream(stream)) as subscription:
            pending = asyncio.ensure_future(next_of(subscription, 10))
            await until_live(store)
            before = store.listener.notifications
            await writer_store.append(stream, new_events(1), NO_STREAM)
            event = await pending
            assert (event.stream, event.version) == (stream, 1)
            assert store.listener.notifications > before
    finally:
        await store.close()


async def test_without_notifications_the_fallback_poll_still_delivers(
    writer_store: PostgresEventStore,
) -> None:
    store = await PostgresEventStore.open(
        await session_database_url(), listen=False, fallback_poll=0.2
    )
    stream = unique_stream("poll")
    try:
        async with closing(store.subscribe_stream(stream)) as subscription:
            pending = asyncio.ensure_future(next_of(subscription, 10))
            await until_live(store)
            await writer_store.append(stream, new_events(2), NO_STREAM)
            assert (await pending).version == 1
            assert (await next_of(subscription, 10)).version == 2
        assert store.listener.notifications == 0
    finally:
        await store.close()


async def test_a_dropped_listener_loses_no_event_and_reconnects(
    writer_store: PostgresEventStore,
) -> None:
    url = await session_database_url()
    store = await PostgresEventStore.open(url, fallback_poll=0.3)
    stream = unique_stream("drop")
    try:
        async with closing(store.subscribe_stream(stream)) as subscription:
            pending = asyncio.ensure_future(next_of(subscription, 10))
            await until_live(store)
            pid = store.listener.server_pid
            assert pid is not None
            admin = await asyncpg.connect(url)
            try:
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            finally:
                await admin.close()
            # Committed while nobody listens: its notification is lost.
            await writer_store.append(stream, new_events(1), NO_STREAM)
            assert (await pending).version == 1
            for _ in range(100):
                if store.listener.server_pid not in (None, pid):
                    break
                await asyncio.sleep(0.05)
            assert store.listener.server_pid not in (None, pid)
            await writer_store.append(stream, new_events(1), 1)
            assert (await next_of(subscription, 10)).version == 2
    finally:
        await store.close()
