"""Silent stalls: a background task that meets an unexpected exception must not die quietly
(or leave futures waiting forever). The real SQLite writer and the real projector runner, each
fed one failure it does not expect."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from eventstore.embedded import SQLiteEventStore
from eventstore.embedded.schema import DB_FILE_NAME, connect, create_schema
from eventstore.embedded.writer import GroupCommitWriter
from eventstore.port import EventStoreError, PersistentSubscription, RecordedEvent, StoreUnavailable
from projections.queries import OrderQueries
from projections.redis_store import RedisViewStore
from projections.runner import ProjectorRunner, RunnerSettings
from tests.integration.projections.store_helpers import eventually
from tests.integration.projections.test_runner import place
from tests.support.redis_server import running_redis_server


def _writer(tmp_path: Path) -> GroupCommitWriter:
    path = tmp_path / DB_FILE_NAME
    conn = connect(path)
    create_schema(conn)
    conn.close()
    writer = GroupCommitWriter(path, lambda: None)
    writer.start()
    return writer


def _fine(conn: sqlite3.Connection, recorded_at: int) -> str:
    conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    conn.execute("INSERT INTO t VALUES (?)", (recorded_at,))
    return "done"


def _buggy(conn: sqlite3.Connection, recorded_at: int) -> None:
    raise RuntimeError("a bug in one write")


def _fatal(conn: sqlite3.Connection, recorded_at: int) -> None:
    raise SystemExit("the writer thread ends")


async def test_a_write_that_raises_fails_alone_and_the_writer_goes_on(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    try:
        async with asyncio.timeout(10):  # a dead writer would leave these waiting for good
            with pytest.raises(EventStoreError):
                await writer.submit(_buggy)
            assert await writer.submit(_fine) == "done"
    finally:
        async with asyncio.timeout(10):
            await writer.close()


async def test_a_dead_writer_fails_every_write_instead_of_hanging(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    try:
        async with asyncio.timeout(10):
            with pytest.raises(StoreUnavailable):
                await writer.submit(_fatal)
            with pytest.raises(StoreUnavailable):
                await writer.submit(_fine)
        assert writer.last_outcome[1] is not None  # the health check reports it
    finally:
        async with asyncio.timeout(10):
            await writer.close()


def _slow(conn: sqlite3.Connection, recorded_at: int) -> str:
    time.sleep(0.6)  # a disk this slow: the writer thread stalls, the event loop does not
    return _fine(conn, recorded_at)


async def test_a_stalled_write_is_given_up_on_at_its_deadline_and_still_commits(
    tmp_path: Path,
) -> None:
    writer = _writer(tmp_path)
    try:
        async with asyncio.timeout(10):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="STORE_TIMEOUT"):
                await writer.submit(_slow, give_up_after=0.1)
            assert time.monotonic() - started < 0.5
            # Given up on, not undone: the next write finds the writer going on.
            assert await writer.submit(_fine, give_up_after=5.0) == "done"
        assert writer.stats.writes == 2
    finally:
        async with asyncio.timeout(10):
            await writer.close()


class _FailingOnce:
    """The real store, whose first persistent-subscription consumer breaks with a bug."""

    def __init__(self, store: SQLiteEventStore) -> None:
        self.store = store
        self.groups = _FailingGroups(store)

    @property
    def failed(self) -> bool:
        return self.groups.failed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class _FailingGroups:
    """The store's groups, whose first consumer breaks with a bug."""

    def __init__(self, store: SQLiteEventStore) -> None:
        self.store = store
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store.groups, name)

    async def read_subscription(self, group: str, **kwargs: Any) -> PersistentSubscription:
        inner = await self.store.groups.read_subscription(group, **kwargs)
        if self.failed:
            return inner
        self.failed = True
        return _Broken(inner)


class _Broken:
    def __init__(self, inner: PersistentSubscription) -> None:
        self.inner = inner

    def __aiter__(self) -> AsyncIterator[RecordedEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[RecordedEvent]:
        raise KeyError("not an EventStoreError")
        yield  # pragma: no cover

    async def ack(self, event: RecordedEvent) -> None:
        await self.inner.ack(event)

    async def nack(self, event: RecordedEvent, action: Any) -> None:
        await self.inner.nack(event, action)

    async def stop(self) -> None:
        await self.inner.stop()


async def test_the_projector_survives_an_unexpected_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await SQLiteEventStore.open(tmp_path / "store")
    try:
        with running_redis_server(tmp_path) as socket:
            redis = Redis(unix_socket_path=str(socket))
            try:
                for n in range(3):
                    await place(store, f"o{n}")
                flaky = _FailingOnce(store)
                runner = ProjectorRunner(
                    flaky,
                    RedisViewStore(redis),
                    settings=RunnerSettings(health_interval=0.1),
                )
                stop = asyncio.Event()
                task = asyncio.create_task(runner.run(stop))
                queries = OrderQueries(redis)

                async def projected() -> bool:
                    view = await queries.get_order("late")
                    # the crash first: "late" may reach the views by the first catch-up alone
                    crashed = "event=projector_crashed" in caplog.text
                    return crashed and view is not None and runner.state == "running"

                await place(store, "late")
                await eventually(projected, within=10)  # it went on, and projects again
                assert runner.state == "running"
                assert runner.last_error is None  # cleared on recovery
                assert flaky.failed
                assert "event=projector_crashed" in caplog.text  # loud, not quiet
                stop.set()
                async with asyncio.timeout(10):
                    await task
            finally:
                await redis.aclose()
    finally:
        await store.close()
