"""PostgreSQL ending the sessions of an `orders project` process and of a writer, again and again
(`pg_terminate_backend`, what a restart does to every session): the store's clients meet an
outage, never asyncpg's "cannot switch to state ...; another operation (2) is in progress" (a
pooled connection the server had ended while idle, handed out before asyncpg noticed), and the
projector lives on without a traceback.

The fault is real: the server sends each backend's client the FATAL "terminating connection due to
administrator command" and closes it, as a restart does.

And a store stops its persistent-subscription groups in time, however the outage goes: a
cancellation reaching a task that stops a group runtime is not lost (a shutdown once waited for
good on the members task), and a close while PostgreSQL refuses every connection ends within
`STOP_DEADLINE` and its grace."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest

from eventstore.persistent.group import GroupRuntime
from eventstore.persistent.groups import PersistentGroups
from eventstore.port import StoreUnavailable, SubscriptionDropped, SubscriptionSettings
from eventstore.postgres.persistent import STOP_DEADLINE, STOP_GRACE
from eventstore.postgres.store import PostgresEventStore
from tests.integration.relay.topic import write_orders
from tests.support.postgres_db import ADMIN_URL, create_database, drop_database
from tests.support.processes import orders_process
from tests.support.redis_server import running_redis_server

KILLING = 8.0
"""Seconds of sessions being ended, every 50-300 ms."""
ASYNCPG_BUSY = ("another operation", "cannot switch to state")


class Collected(logging.Handler):
    """Every record this process logs, as text (its traceback included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter().format(record))


@pytest.fixture
def collected() -> Iterator[Collected]:
    handler = Collected()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture
async def database() -> AsyncIterator[str]:
    url = await create_database("orders_terminated")
    try:
        yield url
    finally:
        await drop_database(url)


@contextmanager
def projector(tmp: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with orders_process(
        ["project", "--workers", "2"], {**env, "DATA_DIR": str(tmp / "data")}, tmp / "project.log"
    ) as process:
        yield process


async def _end_sessions(database: str) -> None:
    """Every session on `database` but the caller's is ended by the server."""
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()


async def test_sessions_ended_under_the_projector_and_writer_are_outages_not_busy_connections(
    database: str, tmp_path: Path, collected: Collected
) -> None:
    name = database.rsplit("/", 1)[1]
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    store = await PostgresEventStore.open(database)
    log = tmp_path / "project.log"
    written = {"ok": 0, "unavailable": 0}
    stop = asyncio.Event()

    async def writer(n: int) -> None:
        while not stop.is_set():
            try:
                await write_orders(store, 1, tag=f"w{n}")
                written["ok"] += 1
            except StoreUnavailable:
                written["unavailable"] += 1
                await asyncio.sleep(0.05)

    try:
        with (
            running_redis_server(redis_dir) as socket_path,
            projector(
                tmp_path, {"DATABASE_URL": database, "REDIS_URL": f"unix://{socket_path}"}
            ) as process,
        ):
            deadline = time.monotonic() + 30
            while "event=pg_group_partitions" not in log.read_text(errors="replace"):
                assert process.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                await asyncio.sleep(0.1)
            writers = [asyncio.create_task(writer(n)) for n in range(4)]
            ends = 0
            until = time.monotonic() + KILLING
            while time.monotonic() < until:
                await _end_sessions(name)
                ends += 1
                await asyncio.sleep(random.uniform(0.05, 0.3))
            back = written["ok"]
            deadline = time.monotonic() + 20
            while written["ok"] < back + 8:  # the writers are served again
                assert time.monotonic() < deadline, written
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.gather(*writers)
            assert process.poll() is None, log.read_text(errors="replace")
            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 20) == 0, log.read_text()
    finally:
        stop.set()
        with contextlib.suppress(StoreUnavailable):
            await store.close()
    projected = log.read_text(errors="replace")
    ours = "\n".join(collected.lines)
    print(f"{ends} rounds of ended sessions; writes {written}")
    assert "event=outage part=eventStore" in projected  # the fault was met
    for busy in ASYNCPG_BUSY:
        assert busy not in projected, projected
        assert busy not in ours, ours
    assert "Traceback" not in projected, projected


async def _running(store: PostgresEventStore, group: str) -> GroupRuntime:
    """The runtime of `group` in `store`'s process, once it holds the group's partitions."""
    groups = store.groups
    assert isinstance(groups, PersistentGroups)
    deadline = time.monotonic() + 20
    while (runtime := groups.running(group, None)) is None:
        assert time.monotonic() < deadline, "the group never ran here"
        await asyncio.sleep(0.05)
    return runtime


async def test_a_task_cancelled_while_stopping_a_group_runtime_ends_cancelled(
    database: str,
) -> None:
    # The cycle behind a shutdown that hung: closing the store cancels the members task while it
    # stops a runtime (a partition handed over, or the connection lost), and awaiting the
    # runtime's cancelled feed task swallowed that cancellation: the members task ran on, and
    # the close waited for it for good, holding up the consumers waiting for its lock.
    store = await PostgresEventStore.open(database)
    try:
        await store.groups.create_subscription("stopping", settings=SubscriptionSettings())
        subscription = await store.groups.read_subscription("stopping")
        runtime = await _running(store, "stopping")
        stopping = asyncio.create_task(runtime.stop(None))
        await asyncio.sleep(0)  # it has cancelled its tasks and waits for them to end
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        assert stopping.cancelled()
        await subscription.stop()
    finally:
        async with asyncio.timeout(20):
            await store.close()


async def test_a_store_closed_while_postgresql_refuses_it_stops_its_groups_in_time(
    database: str,
) -> None:
    name = database.rsplit("/", 1)[1]
    store = await PostgresEventStore.open(database)
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await store.groups.create_subscription("outage", settings=SubscriptionSettings())
        subscription = await store.groups.read_subscription("outage")
        await _running(store, "outage")
        await write_orders(store, 2)
        async with asyncio.timeout(20):
            event = await anext(aiter(subscription))
        await subscription.ack(event)  # a checkpoint to store, which PostgreSQL will refuse
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await _end_sessions(name)
        started = time.monotonic()
        async with asyncio.timeout(STOP_DEADLINE + STOP_GRACE + 15):  # a generous margin
            with contextlib.suppress(StoreUnavailable):
                await store.close()
        assert time.monotonic() - started < STOP_DEADLINE + STOP_GRACE + 15
        with pytest.raises(SubscriptionDropped):
            await anext(aiter(subscription))
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        with contextlib.suppress(StoreUnavailable):
            await store.close()
