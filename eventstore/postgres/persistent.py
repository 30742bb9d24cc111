"""Persistent subscriptions on PostgreSQL, with EventStoreDB's semantics: the same group engine as
the embedded store (`eventstore.embedded.persistent_group`), over group state kept in PostgreSQL
(`persistent_tables`), fed by the store's own catch-up subscriptions.

Several processes on one database share a group through a session advisory lock per group: the
process holding it runs the group (reads the log, delivers to its consumers, checkpoints); the
others' consumers stand by and their process tries the lock again every `STANDBY_POLL` seconds.
When the leader stops or dies (its connection ends, so PostgreSQL releases the lock), a standby
takes over from the checkpoint stored in PostgreSQL: delivery stays at-least-once. A leader stops
delivering as soon as it sees its lock connection end; until it sees that (a silent network loss),
two processes may deliver the same events, which at-least-once consumers (the projector's
idempotent apply) absorb. Groups whose names hash alike share one lock, so one process runs both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from eventstore.embedded.persistent_group import GroupRuntime
from eventstore.embedded.persistent_tables import GroupRecord, stream_key
from eventstore.port import (
    EventStore,
    EventStoreError,
    MaxSubscribersReached,
    PersistentSubscription,
    RecordedEvent,
    StoreUnavailable,
    SubscriptionDropped,
    SubscriptionGroupExists,
    SubscriptionGroupNotFound,
    SubscriptionInfo,
    SubscriptionSettings,
)
from eventstore.postgres.persistent_tables import PostgresGroupTables

logger = logging.getLogger(__name__)

STANDBY_POLL = 1.0
"""Seconds between a standby process's attempts to take a group over."""

_LOCK_CLASS = 0x6F72_6465  # advisory-lock namespace of group leadership (with hashtext of the key)


async def _take_lock(conn: Any, name: str) -> None:
    """Hold the session lock of group `name` on `conn`, trying every `STANDBY_POLL` seconds."""
    while True:
        if await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", _LOCK_CLASS, name):
            return
        await asyncio.sleep(STANDBY_POLL)


def _setter(future: asyncio.Future[None]) -> Any:
    def done(_: object) -> None:
        if not future.done():
            future.set_result(None)

    return done


def _target(stream: str | None) -> str:
    return stream_key(stream)


class PostgresPersistentSubscriptions:
    """Every persistent-subscription group of one PostgreSQL store (`store` is used only through
    the `EventStore` port)."""

    def __init__(self, store: EventStore, pool: object, dsn: str) -> None:
        self._store = store
        self._dsn = dsn
        self._tables = PostgresGroupTables(pool)
        self._runtimes: dict[tuple[str, str], GroupRuntime] = {}
        self._leads: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._leading: set[tuple[str, str]] = set()  # the groups this process runs now
        self._open = False

    async def start(self) -> None:
        """Start the group-state writer. Groups start running when a consumer connects."""
        self._tables.start()
        self._open = True

    async def close(self) -> None:
        """Stop every group (consumers end with `SubscriptionDropped`), save checkpoints."""
        if not self._open:
            return
        self._open = False
        keys = list(self._runtimes)
        try:
            for key in keys:
                await self._stop(key, SubscriptionDropped("the event store was closed"))
        finally:
            await self._tables.close()

    # -- definitions -----------------------------------------------------------------------------

    async def create_subscription(
        self, group: str, *, stream: str | None = None, settings: SubscriptionSettings
    ) -> None:
        """Create a group. Raises `SubscriptionGroupExists`."""
        self._check_open()
        if await self._tables.get_group(group, stream) is not None:
            raise SubscriptionGroupExists(f"{_target(stream)}::{group} already exists")
        record = GroupRecord(
            group=group,
            stream=stream,
            settings=settings,
            start_after=await self._start_after(stream, settings),
            checkpoint=None,
        )
        if not await self._tables.insert_group(record):
            raise SubscriptionGroupExists(f"{_target(stream)}::{group} already exists")

    async def update_subscription(
        self, group: str, *, stream: str | None = None, settings: SubscriptionSettings
    ) -> None:
        """Change a group's settings. Connected consumers are dropped, as EventStoreDB drops them;
        the checkpoint stays, so a new start point matters only to a group without one."""
        self._check_open()
        record = await self._record(group, stream)
        start_after = record.start_after
        old = record.settings
        if (settings.start_from, settings.from_end) != (old.start_from, old.from_end):
            start_after = await self._start_after(stream, settings)
        await self._stop(
            (_target(stream), group), SubscriptionDropped(f"{_target(stream)}::{group} was updated")
        )
        await self._tables.update_group(group, stream, settings, start_after)

    async def delete_subscription(self, group: str, *, stream: str | None = None) -> None:
        """Delete a group and its parked events; its consumers get `SubscriptionDropped`."""
        self._check_open()
        await self._stop(
            (_target(stream), group), SubscriptionDropped(f"{_target(stream)}::{group} was deleted")
        )
        if not await self._tables.delete_group(group, stream):
            raise SubscriptionGroupNotFound(f"{_target(stream)}::{group} does not exist")

    async def get_subscription_info(
        self, group: str, *, stream: str | None = None
    ) -> SubscriptionInfo:
        """What is known of one group. Raises `SubscriptionGroupNotFound`."""
        self._check_open()
        return await self._info(await self._record(group, stream))

    async def list_subscriptions(self, *, stream: str | None = None) -> list[SubscriptionInfo]:
        """Every group (of every target) when `stream` is None, else the groups on `stream`,
        as esdbclient's `list_subscriptions()` and `list_subscriptions_to_stream(stream)`."""
        self._check_open()
        records = await self._tables.list_groups(stream, every_stream=stream is None)
        return [await self._info(record) for record in records]

    # -- consuming -------------------------------------------------------------------------------

    async def read_subscription(
        self, group: str, *, stream: str | None = None, buffer_size: int = 100
    ) -> PersistentSubscription:
        """Connect a consumer. Raises `SubscriptionGroupNotFound`, `MaxSubscribersReached`."""
        self._check_open()
        runtime = await self._runtime(group, stream)
        limit = runtime.record.settings.max_subscriber_count
        if limit > 0 and len(runtime.consumers) >= limit:
            raise MaxSubscribersReached(
                f"Maximum subscriptions reached: {_target(stream)}::{group} allows {limit}"
            )
        return runtime.connect(buffer_size)

    async def list_parked(
        self, group: str, *, stream: str | None = None, limit: int = 100
    ) -> list[RecordedEvent]:
        """The group's parked events, oldest first."""
        self._check_open()
        await self._record(group, stream)
        return await self._tables.list_parked(group, stream, limit)

    async def replay_parked(self, group: str, *, stream: str | None = None) -> None:
        """Redeliver every parked event ahead of new ones; the parked list becomes empty."""
        self._check_open()
        key = (_target(stream), group)
        runtime = await self._runtime(group, stream)
        # Parked events taken here are delivered by this process only: take them when it leads.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * STANDBY_POLL
        while key not in self._leading:
            if loop.time() > deadline:
                raise EventStoreError(
                    f"{key[0]}::{group} is run by another process: replay its parked events there"
                )
            await asyncio.sleep(0.02)
        events = await self._tables.take_parked(group, stream)
        if events:
            logger.info("replaying %d parked events of %s", len(events), group)
            runtime.replay_parked(events)

    # -- internals -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._open:
            raise StoreUnavailable("persistent subscriptions are closed")

    async def _record(self, group: str, stream: str | None) -> GroupRecord:
        record = await self._tables.get_group(group, stream)
        if record is None:
            raise SubscriptionGroupNotFound(f"{_target(stream)}::{group} does not exist")
        return record

    async def _runtime(self, group: str, stream: str | None) -> GroupRuntime:
        key = (_target(stream), group)
        runtime = self._runtimes.get(key)
        if runtime is None:
            record = await self._record(group, stream)
            # Consumers connecting at once all wait for the record: only the first makes the
            # runtime, or the others would each run the group too and deliver it twice.
            runtime = self._runtimes.get(key)
            if runtime is not None:
                return runtime
            runtime = GroupRuntime(record, self._store, self._tables)
            self._runtimes[key] = runtime
            self._leads[key] = asyncio.create_task(
                self._lead(key, runtime), name=f"persistent lead {key[0]}::{key[1]}"
            )
        return runtime

    async def _stop(self, key: tuple[str, str], error: BaseException) -> None:
        lead = self._leads.pop(key, None)
        if lead is not None:
            lead.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lead
        runtime = self._runtimes.pop(key, None)
        if runtime is not None:
            await runtime.stop(error)

    async def _lead(self, key: tuple[str, str], runtime: GroupRuntime) -> None:
        """Take the group's lock (waiting as a standby while another process holds it), run the
        group while it is held, and give the group up if the lock's connection is lost."""
        stream_key_, group = key
        conn: Any = None
        try:
            while True:
                try:
                    conn = await asyncpg.connect(self._dsn)
                    await _take_lock(conn, f"{stream_key_}::{group}")
                    record = await self._tables.get_group(group, runtime.record.stream)
                    if record is None:
                        return  # deleted meanwhile; delete_subscription stops this task
                    logger.info("event=pg_group_led group=%s target=%s", group, stream_key_)
                    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    conn.add_termination_listener(_setter(lost))
                    runtime.start(record)
                    self._leading.add(key)
                    await lost
                except (
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                    asyncpg.InternalClientError,
                ) as error:
                    logger.warning("event=pg_group_lock_failed group=%s error=%s", group, error)
                    await asyncio.sleep(STANDBY_POLL)
                    continue
                # The lock is gone with its connection: another process may lead now, so this
                # one must stop delivering at once. Its consumers are dropped and reconnect.
                logger.warning("event=pg_group_lost group=%s target=%s", group, stream_key_)
                self._runtimes.pop(key, None)
                self._leads.pop(key, None)
                await runtime.stop(SubscriptionDropped(f"{stream_key_}::{group}: leadership lost"))
                return
        finally:
            self._leading.discard(key)
            # Abruptly: this may run while a query of the lock loop is in flight (cancelled),
            # where a graceful close can fail; the server releases the lock either way.
            if conn is not None and not conn.is_closed():
                conn.terminate()

    async def _info(self, record: GroupRecord) -> SubscriptionInfo:
        runtime = self._runtimes.get((_target(record.stream), record.group))
        return SubscriptionInfo(
            group=record.group,
            stream=record.stream,
            settings=record.settings,
            status="Live",
            checkpoint=record.checkpoint,
            parked=await self._tables.count_parked(record.group, record.stream),
            connections=0 if runtime is None else len(runtime.consumers),
        )

    async def _start_after(self, stream: str | None, settings: SubscriptionSettings) -> int | None:
        """The exclusive start point of a group without a checkpoint, fixed at creation so that
        `from_end` means "events after the group was created", as on EventStoreDB."""
        if settings.from_end:
            if stream is None:
                head = await self._store.head_position()
                return head if head > 0 else None
            last = await self._store.read_stream(stream, backwards=True, limit=1)
            return last[0].version if last else None
        start = settings.start_from
        if start is None:
            return None
        if stream is None:
            return start - 1 if start >= 1 else None
        # Version 1 is a stream's first event: "after version 0" is simply "from the start".
        return start - 1 if start > 1 else None
