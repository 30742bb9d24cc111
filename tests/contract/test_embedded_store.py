"""What only the embedded adapter promises beyond the port: its file, durability across a restart,
group commit, and cleanup of subscriptions and connections."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from eventstore.embedded import SQLiteEventStore
from eventstore.port import NO_STREAM, StoreUnavailable, SubscriptionDropped
from tests.contract.conftest import closing, new_events, unique_stream


async def until_live(store: SQLiteEventStore) -> None:
    """Wait (bounded) until a subscriber sleeps on the store's head notifier."""
    for _ in range(1000):
        if store.live_waiters:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no subscriber went live")


async def test_one_wal_file_under_the_data_dir_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    stream = unique_stream()
    store = await SQLiteEventStore.open(data_dir)
    try:
        first = await store.append(stream, new_events(3), NO_STREAM)
        await store.set_stream_metadata(stream, {"$maxCount": 2})
    finally:
        await store.close()
    path = data_dir / "events.sqlite3"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    reopened = await SQLiteEventStore.open(data_dir)
    try:
        assert [e.version for e in await reopened.read_stream(stream)] == [2, 3]
        second = await reopened.append(stream, new_events(1), 3)
        assert second.version == 4
        assert second.position > first.position
    finally:
        await reopened.close()


async def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    store = await SQLiteEventStore.open(tmp_path)
    try:
        before = store.writer_stats
        results = await asyncio.gather(
            *(store.append(unique_stream(), new_events(1), NO_STREAM) for _ in range(50))
        )
        after = store.writer_stats
    finally:
        await store.close()
    assert len({r.position for r in results}) == 50
    assert after.writes - before.writes == 50
    # 50 appends queued together need far fewer than 50 transactions (fsyncs).
    assert after.commits - before.commits <= 25


async def test_a_closed_subscription_leaves_no_waiter(tmp_path: Path) -> None:
    store = await SQLiteEventStore.open(tmp_path)
    try:
        stream = unique_stream()
        async with closing(store.subscribe_stream(stream)) as subscription:
            pending = asyncio.ensure_future(anext(subscription))
            await until_live(store)
            await store.append(stream, new_events(1), NO_STREAM)
            assert (await pending).version == 1
        assert store.live_waiters == 0
    finally:
        await store.close()


async def test_closing_the_store_drops_live_subscribers(tmp_path: Path) -> None:
    store = await SQLiteEventStore.open(tmp_path)
    subscription = store.subscribe_all()
    async with closing(subscription):
        pending = asyncio.ensure_future(anext(subscription))
        await until_live(store)
        await store.close()
        with pytest.raises(SubscriptionDropped):
            await asyncio.wait_for(pending, 10)
    with pytest.raises(StoreUnavailable):
        await store.append(unique_stream(), new_events(1), NO_STREAM)
    with pytest.raises(StoreUnavailable):
        await store.read_all()


async def test_the_tail_of_a_stream_is_read_through_the_stream_index(tmp_path: Path) -> None:
    store = await SQLiteEventStore.open(tmp_path)
    await store.close()
    with sqlite3.connect(tmp_path / "events.sqlite3") as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM events WHERE stream = ? AND version <= ? "
            "AND version >= ? ORDER BY version DESC LIMIT ?",
            ("s", 10_000, 1, 5),
        ).fetchall()
    conn.close()
    assert any("events_by_stream" in str(row[-1]) for row in plan)
    assert not any("TEMP B-TREE" in str(row[-1]) for row in plan)


async def test_persistent_subscriptions_are_wired(tmp_path: Path) -> None:
    store = await SQLiteEventStore.open(tmp_path)
    try:
        assert await store.groups.list_subscriptions() == []
    finally:
        await store.close()
