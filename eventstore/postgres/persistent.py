"""Persistent subscriptions on PostgreSQL, with EventStoreDB's semantics: the shared engine
(`eventstore.persistent`) over group state kept in PostgreSQL (`persistent_tables`), fed by the
store's own catch-up subscriptions.

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

from eventstore.persistent.group import GroupRuntime
from eventstore.persistent.groups import GroupKey, Guard, PersistentGroups
from eventstore.port import EventStore, EventStoreError, SubscriptionDropped
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


class PostgresPersistentSubscriptions(PersistentGroups):
    """Every persistent-subscription group of one PostgreSQL store (`store` is used only through
    the `EventStore` port)."""

    def __init__(self, store: EventStore, pool: object, dsn: str, *, guard: Guard) -> None:
        super().__init__(store, PostgresGroupTables(pool), guard=guard)
        self._dsn = dsn
        self._leads: dict[GroupKey, asyncio.Task[None]] = {}
        self._leading: set[GroupKey] = set()  # the groups this process runs now

    def _launch(self, key: GroupKey, runtime: GroupRuntime) -> None:
        """Run the group once this process holds its lock (see the module doc)."""
        self._leads[key] = asyncio.create_task(
            self._lead(key, runtime), name=f"persistent lead {key[0]}::{key[1]}"
        )

    async def _stop(self, key: GroupKey, error: BaseException) -> None:
        lead = self._leads.pop(key, None)
        if lead is not None:
            lead.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lead
        await super()._stop(key, error)

    async def _await_leading(self, key: GroupKey) -> None:
        """Parked events taken here are delivered by this process only: take them when it leads."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * STANDBY_POLL
        while key not in self._leading:
            if loop.time() > deadline:
                raise EventStoreError(
                    f"{key[0]}::{key[1]} is run by another process: replay its parked events there"
                )
            await asyncio.sleep(0.02)

    async def _lead(self, key: GroupKey, runtime: GroupRuntime) -> None:
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
