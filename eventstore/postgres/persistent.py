"""Persistent subscriptions on PostgreSQL, with EventStoreDB's semantics: the shared engine
(`eventstore.persistent`) over group state kept in PostgreSQL (`persistent_tables`), fed by the
store's own catch-up subscriptions, and shared by every process on the database.

A group is split into fixed partitions by its pin key (`persistent_tables.partition_key`: the
stream, or the `$correlationId` for PinnedByCorrelation), so one stream's events stay in one
partition and a pinned group keeps their order. Each process with consumers of a group is a member
of it (a row in `es_persistent_members`: its consumer count and a heartbeat). Every member computes
the same assignment of partitions to the live members (`assign`) and runs a partition only while it
holds that partition's session advisory lock: when the assignment changes, the old owner stops its
runtime, stores its checkpoints and unlocks before the new owner can take the lock, so two
processes never deliver one partition at once. A process runs the partitions it owns with one
`GroupRuntime` fed by one catch-up subscription that skips the other partitions' events: one read
of the log per process and group, whatever the number of partitions. Its checkpoints go to its
partitions; the group's checkpoint is the lowest partition's. That part of a group in one process
(its consumers, the locks it holds, its runtime) is `shared_group.SharedGroup`; this module is the
members meeting.

Members meet on a dedicated connection per store (it holds the locks and LISTENs on
`MEMBERS_CHANNEL`): a member wakes on a notification (a member joined, left or gave partitions up;
a replay was asked for) and otherwise every `HEARTBEAT` seconds, when it refreshes its row. A
member whose backend is gone (the process died: its locks went with its connection) or whose
heartbeat is older than `MEMBER_TIMEOUT` is removed by the next member that looks, and the others
take its partitions from their checkpoints: delivery stays at-least-once. A member stops
delivering as soon as it sees its connection end; until it sees that (a silent network loss), two
processes may deliver the same events, which at-least-once consumers (the projector's idempotent
apply) absorb.

`max_subscriber_count` counts the consumers of every live member. `replay_parked` works from any
process: it records a replay request and notifies; each partition's owner (now, or the next one to
take it) moves that partition's parked events back into its runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
import zlib
from collections.abc import Iterable
from typing import Any

import asyncpg

from eventstore.outage_log import OUTAGES
from eventstore.persistent.group import GroupRuntime
from eventstore.persistent.groups import (
    GroupDeleted,
    GroupKey,
    GroupUpdated,
    Guard,
    PersistentGroups,
)
from eventstore.persistent.records import GroupRecord, settings_from_json, stream_key
from eventstore.port import (
    EventStore,
    MaxSubscribersReached,
    PersistentSubscription,
    SubscriptionDropped,
    SubscriptionInfo,
)
from eventstore.postgres.persistent_tables import PostgresGroupTables
from eventstore.postgres.schema import MEMBERS_CHANNEL
from eventstore.postgres.shared_group import SharedGroup, group_name, lock_key
from eventstore.postgres.stale import explained

logger = logging.getLogger(__name__)

HEARTBEAT = 1.0
"""Seconds between a member's looks at its groups when nothing notified it."""

MEMBER_TIMEOUT = 10.0
"""A member whose heartbeat is older than this is taken for dead (a dead process's backend is
noticed at once: this covers a process alive but stuck)."""

STOP_DEADLINE = 8.0
"""Seconds `close` gives the groups here to stop and store their checkpoints: a shutdown ends
within it (and `STOP_GRACE`) even when PostgreSQL is unreachable."""

STOP_GRACE = 2.0
"""Seconds past `STOP_DEADLINE` to store what is queued, once the groups have stopped."""

SETTLE_WAIT = 2.0
"""Seconds a leaving consumer waits for the members lock before leaving its round to the loop."""

_MEMBERS_LOCK = 0xFFFF  # the "partition" whose lock serialises a group's consumer count

_CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

_LIVE = (
    "m.heartbeat > now() - make_interval(secs => $3::float8)"
    " AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = m.backend_pid)"
)
_UPSERT = (
    "INSERT INTO es_persistent_members (stream_key, group_name, member_id, backend_pid,"
    " consumers, delivered) VALUES ($1, $2, $3, $4, $5, $6)"
    " ON CONFLICT (stream_key, group_name, member_id) DO UPDATE SET"
    " backend_pid = excluded.backend_pid, consumers = excluded.consumers,"
    " delivered = excluded.delivered, heartbeat = now()"
)
_OTHERS = (
    "SELECT coalesce(sum(m.consumers), 0) FROM es_persistent_members m"
    f" WHERE m.stream_key = $1 AND m.group_name = $2 AND m.member_id <> $4 AND {_LIVE}"
)


def assign(partitions: Iterable[int], members: Iterable[str]) -> dict[int, str]:
    """Each partition's owner among `members`: the member ranking it highest (rendezvous
    hashing) among those still below their fair share, so every member computes the same
    balanced assignment, and a member joining or leaving moves few partitions."""
    ids = sorted(set(members))
    if not ids:
        return {}
    wanted = sorted(partitions)
    share = -(-len(wanted) // len(ids))
    load = dict.fromkeys(ids, 0)
    owners: dict[int, str] = {}
    for part in wanted:
        ranked = sorted(ids, key=lambda m: zlib.crc32(f"{m}/{part}".encode()), reverse=True)
        owner = next(m for m in ranked if load[m] < share)
        load[owner] += 1
        owners[part] = owner
    return owners


class PostgresPersistentSubscriptions(PersistentGroups):
    """Every persistent-subscription group of one PostgreSQL store (`store` is used only through
    the `EventStore` port), shared with the other processes on the database (see the module
    doc)."""

    def __init__(self, store: EventStore, pool: Any, dsn: str, *, guard: Guard) -> None:
        self._group_tables = PostgresGroupTables(pool)
        super().__init__(store, self._group_tables, guard=guard)
        self._pool = pool
        self._dsn = dsn
        self.member_id = uuid.uuid4().hex
        self._shared: dict[GroupKey, SharedGroup] = {}
        self._conn: Any = None
        self._pid = 0
        self._lock = asyncio.Lock()  # one user of the connection (and of the groups) at a time
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the tables; the members connection opens with the first consumer (a process
        that never consumes, such as an API process, has none)."""
        await super().start()
        self._task = asyncio.create_task(self._coordinate(), name="postgres-group-members")

    async def close(self) -> None:
        """Stop every group here within `STOP_DEADLINE`, PostgreSQL reachable or not: past it,
        what is not stored yet is given up (the locks go with the connection, and the next
        owner resumes from the stored checkpoints: at-least-once)."""
        if not self._open:
            return
        deadline = asyncio.get_running_loop().time() + STOP_DEADLINE
        groups = list(self._shared.values())
        try:
            if self._task is not None:
                # First, so that it holds no lock while the groups stop (see `_coordinate`).
                await _cancel_within(self._task, deadline)
                self._task = None
            async with asyncio.timeout_at(deadline):
                for key in list(self._shared):
                    await self._stop(key, SubscriptionDropped("the event store was closed"))
        except TimeoutError:
            logger.warning("event=pg_group_stop_overdue groups=%d", len(groups))
            await _abandon(groups)
            self._shared.clear()
        finally:
            if self._conn is not None and not self._conn.is_closed():
                self._conn.terminate()  # the locks go with it, after the checkpoints were stored
            self._conn = None
            with contextlib.suppress(TimeoutError):
                # The queued writes are stored unless PostgreSQL is out past the deadline.
                async with asyncio.timeout_at(deadline + STOP_GRACE):
                    await super().close()

    def running(self, group: str, stream: str | None) -> GroupRuntime | None:
        """The runtime of the group's partitions this process runs now (None: it runs none)."""
        shared = self._shared.get((stream_key(stream), group))
        return None if shared is None else shared.runtime

    async def restart(self) -> None:
        """Stop this process's part of every group (consumers end with `SubscriptionDropped`
        and reconnect); each runs again from its checkpoints when a consumer connects."""
        async with self._guard():
            for key in list(self._shared):
                await self._stop(key, SubscriptionDropped("persistent subscriptions restarted"))

    async def _stop(self, key: GroupKey, error: BaseException) -> None:
        shared = self._shared.pop(key, None)
        if shared is not None:
            async with self._lock:
                await self._shutdown(shared, error)
        await super()._stop(key, error)

    # -- consuming -------------------------------------------------------------------------------

    async def read_subscription(
        self, group: str, *, stream: str | None = None, buffer_size: int = 100
    ) -> PersistentSubscription:
        """Connect a consumer. Raises `SubscriptionGroupNotFound`, `MaxSubscribersReached`
        (counting the consumers of every live member)."""
        async with self._guard():
            record = await self._record(group, stream)
            key = (stream_key(stream), group)
            async with self._lock:
                if self._conn is None or self._conn.is_closed():
                    with contextlib.suppress(*_CONNECTION_ERRORS):
                        await self._connect()  # else the loop connects, and this member waits
                shared = self._shared.get(key)
                if shared is None:
                    count = len(await self._group_tables.partitions(group, stream)) or 1
                    shared = SharedGroup(
                        record,
                        count,
                        wake=self._wake,
                        settle=self._settle,
                        tables=self._group_tables,
                        feed=self._feed,
                    )
                    self._shared[key] = shared
                    self._wake.set()
                limit = record.settings.max_subscriber_count
                async with self._pool.acquire() as conn, conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock($1)", lock_key(key, _MEMBERS_LOCK)
                    )
                    if limit > 0:
                        others = await conn.fetchval(
                            _OTHERS, key[0], group, MEMBER_TIMEOUT, self.member_id
                        )
                        if others + len(shared.fronts) >= limit:
                            raise MaxSubscribersReached(
                                f"Maximum subscriptions reached: {key[0]}::{group} allows {limit}"
                            )
                    await conn.execute(
                        _UPSERT,
                        key[0],
                        group,
                        self.member_id,
                        self._pid,
                        len(shared.fronts) + 1,
                        shared.delivered,
                    )
                    if not shared.fronts:
                        await conn.execute(
                            "SELECT pg_notify($1, $2)", MEMBERS_CHANNEL, group_name(key)
                        )
                front = shared.connect(buffer_size)
                await self._round_now(shared)
            return front

    async def replay_parked(self, group: str, *, stream: str | None = None) -> None:
        """Redeliver every parked event ahead of new ones, from whichever process: each
        partition's owner takes its parked events (this process's own at once)."""
        async with self._guard():
            await self._record(group, stream)
            number = await self._group_tables.request_replay(group, stream, MEMBERS_CHANNEL)
            logger.info(
                "event=persistent_replay_requested group=%s target=%s request=%d",
                group,
                stream_key(stream),
                number,
            )
            shared = self._shared.get((stream_key(stream), group))
            if shared is not None:
                async with self._lock:
                    await self._round_now(shared)

    async def _info(self, record: GroupRecord) -> SubscriptionInfo:
        key = (stream_key(record.stream), record.group)
        shared = self._shared.get(key)
        others: int = await self._pool.fetchval(
            _OTHERS, key[0], record.group, MEMBER_TIMEOUT, self.member_id
        )
        return SubscriptionInfo(
            group=record.group,
            stream=record.stream,
            settings=record.settings,
            status="Live",
            checkpoint=record.checkpoint,
            parked=await self._tables.count_parked(record.group, record.stream),
            connections=others + (0 if shared is None else len(shared.fronts)),
        )

    # -- membership ------------------------------------------------------------------------------

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            await conn.add_listener(MEMBERS_CHANNEL, lambda *_: self._wake.set())
        except BaseException:
            conn.terminate()  # ended before it listened (a restart): never left open
            raise
        conn.add_termination_listener(lambda _: self._wake.set())
        self._conn = conn
        self._pid = conn.get_server_pid()

    async def _coordinate(self) -> None:
        """Look at every group this process takes part in, on each notification and every
        HEARTBEAT seconds; after losing the connection (and with it the locks), stop every
        runtime at once and meet again."""
        while True:
            try:
                while not self._shared:
                    self._wake.clear()
                    await self._wake.wait()  # the first consumer's group wakes this loop
                if self._conn is None or self._conn.is_closed():
                    await self._connect()
                    logger.info("event=pg_group_members_connected")
                while True:
                    self._wake.clear()
                    async with self._lock:
                        for shared in list(self._shared.values()):
                            await self._round(shared)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(HEARTBEAT):
                            await self._wake.wait()
                    if self._conn.is_closed():
                        raise ConnectionError("the members connection ended")
            except Exception as error:
                if isinstance(error, _CONNECTION_ERRORS):
                    OUTAGES.failed("eventStore", explained(error))  # one line per outage
                else:
                    logger.exception("event=pg_group_members_crashed")
                async with self._lock:
                    for shared in self._shared.values():
                        await shared.run(frozenset())  # the locks went with the connection
                        shared.held.clear()
                if self._conn is not None and not self._conn.is_closed():
                    self._conn.terminate()
                self._conn = None
                await asyncio.sleep(HEARTBEAT)

    async def _settle(self, shared: SharedGroup) -> None:
        """A consumer left: tell the other members now, or leave it to the members loop (woken
        already) when the lock is busy past `SETTLE_WAIT`: a consumer's stop never waits on a
        round held up by an outage (a shutdown would wait with it)."""
        if not self._open or self._shared.get(shared.key) is not shared:
            return
        try:
            async with asyncio.timeout(SETTLE_WAIT):
                await self._lock.acquire()
        except TimeoutError:
            self._wake.set()
            return
        try:
            await self._round_now(shared)
        finally:
            self._lock.release()

    async def _round_now(self, shared: SharedGroup) -> None:
        """A look at `shared` right away (under the lock); a failure is left to the loop."""
        if self._conn is None or self._conn.is_closed():
            self._wake.set()
            return
        try:
            await self._round(shared)
        except _CONNECTION_ERRORS:
            self._wake.set()

    async def _round(self, shared: SharedGroup) -> None:
        """Refresh this member's row, drop dead members, take or give up partitions as the
        assignment says, act on a replay request, and checkpoint idle partitions."""
        conn = self._conn
        look = await _look(conn, shared, self.member_id, self._pid)
        if look.gone:
            logger.info(
                "event=pg_group_members_gone group=%s members=%d", shared.key[1], len(look.gone)
            )
        if look.settings is None or settings_from_json(look.settings) != shared.record.settings:
            # Deleted or updated by another process: its consumers reconnect, as they would here.
            name = group_name(shared.key)
            error = GroupDeleted(f"{name} was deleted") if look.settings is None else None
            self._shared.pop(shared.key, None)
            await self._shutdown(shared, error or GroupUpdated(f"{name} was updated"))
            return
        owners = assign(look.replayed, look.members)
        gave_up = await shared.hold(conn, {p for p, m in owners.items() if m == self.member_id})
        if gave_up or look.gone:
            await conn.execute("SELECT pg_notify($1, $2)", MEMBERS_CHANNEL, group_name(shared.key))
        await shared.replay(look.replay, look.replayed)
        shared.checkpoint_idle()

    async def _shutdown(self, shared: SharedGroup, error: BaseException) -> None:
        """Stop this process's part of a group: consumers end with `error`, checkpoints are
        stored before the locks go, and the member leaves."""
        for front in list(shared.fronts):
            front.end(error)
        shared.fronts.clear()
        await shared.run(frozenset())
        await self._group_tables.flush()
        conn = self._conn
        if conn is None or conn.is_closed():
            shared.held.clear()
            return
        target, group = shared.key
        with contextlib.suppress(*_CONNECTION_ERRORS):
            await conn.execute(
                "SELECT pg_advisory_unlock(k) FROM unnest($1::bigint[]) k",
                [lock_key(shared.key, p) for p in sorted(shared.held)],
            )
            await conn.execute(
                "DELETE FROM es_persistent_members WHERE stream_key = $1 AND group_name = $2"
                " AND member_id = $3",
                target,
                group,
                self.member_id,
            )
            await conn.execute("SELECT pg_notify($1, $2)", MEMBERS_CHANNEL, group_name(shared.key))
        shared.held.clear()


@dataclasses.dataclass(frozen=True, slots=True)
class _Look:
    """What a member's round reads of its group, in one transaction."""

    gone: list[str]  # members found dead (and removed)
    members: list[str]  # the live members with consumers
    settings: str | None  # the group's settings as stored (None: the group is gone)
    replay: int  # the group's newest replay request
    replayed: dict[int, int]  # each partition's last replay request acted on


async def _look(conn: Any, shared: SharedGroup, member_id: str, pid: int) -> _Look:
    """Refresh this member's row, remove dead members, and read the group's members, settings
    and partitions."""
    target, group = shared.key
    async with conn.transaction():
        await conn.execute(
            _UPSERT, target, group, member_id, pid, len(shared.fronts), shared.delivered
        )
        gone = await conn.fetch(
            "DELETE FROM es_persistent_members m WHERE m.stream_key = $1"
            f" AND m.group_name = $2 AND m.member_id <> $4 AND NOT ({_LIVE})"
            " RETURNING m.member_id",
            target, group, MEMBER_TIMEOUT, member_id,
        )  # fmt: skip
        members = await conn.fetch(
            "SELECT member_id FROM es_persistent_members"
            " WHERE stream_key = $1 AND group_name = $2 AND consumers > 0",
            target,
            group,
        )
        row = await conn.fetchrow(
            "SELECT replay, settings::text AS settings FROM es_persistent_groups"
            " WHERE stream_key = $1 AND group_name = $2",
            target,
            group,
        )
        parts = await conn.fetch(
            "SELECT partition, replayed FROM es_persistent_partitions"
            " WHERE stream_key = $1 AND group_name = $2",
            target,
            group,
        )
    return _Look(
        gone=[r["member_id"] for r in gone],
        members=[r["member_id"] for r in members],
        settings=None if row is None else row["settings"],
        replay=0 if row is None else row["replay"],
        replayed={p["partition"]: p["replayed"] for p in parts},
    )


async def _cancel_within(task: asyncio.Task[None], deadline: float) -> None:
    """Cancel `task` and wait for it until `deadline` (loop time), cancelling it again while it
    runs on: a cancellation swallowed below it must not hold a shutdown for good."""
    loop = asyncio.get_running_loop()
    while not task.done():
        task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            logger.warning("event=pg_group_members_stop_overdue")
            return
        await asyncio.wait([task], timeout=min(left, 1.0))
    if not task.cancelled() and task.exception() is not None:
        logger.error("event=pg_group_members_failed", exc_info=task.exception())


async def _abandon(groups: list[SharedGroup]) -> None:
    """Past the stop deadline: end the groups' consumers and stop their runtimes (within
    `STOP_GRACE`) without storing or unlocking anything (the connection's end unlocks)."""
    error = SubscriptionDropped("the event store was closed")
    for shared in groups:
        for front in list(shared.fronts):
            front.end(error)
        shared.fronts.clear()
    stopping = [asyncio.ensure_future(shared.run(frozenset())) for shared in groups]
    if stopping:
        await asyncio.wait(stopping, timeout=STOP_GRACE)
