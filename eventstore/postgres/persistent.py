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
partitions; the group's checkpoint is the lowest partition's.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from functools import partial
from typing import Any, Self

import asyncpg

from eventstore.outage_log import OUTAGES
from eventstore.persistent.consumer import Consumer
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
    NackAction,
    PersistentSubscription,
    RecordedEvent,
    SubscriptionDropped,
    SubscriptionInfo,
)
from eventstore.postgres.persistent_tables import (
    PostgresGroupTables,
    partition_key,
    partition_of,
)
from eventstore.postgres.schema import MEMBERS_CHANNEL
from eventstore.postgres.stale import explained

logger = logging.getLogger(__name__)

HEARTBEAT = 1.0
"""Seconds between a member's looks at its groups when nothing notified it."""

MEMBER_TIMEOUT = 10.0
"""A member whose heartbeat is older than this is taken for dead (a dead process's backend is
noticed at once: this covers a process alive but stuck)."""

_LOCK_CLASS = 0x6F70  # the top bits of the advisory-lock keys of group partitions
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


def lock_key(key: GroupKey, partition: int) -> int:
    """The session advisory lock held by the process running `partition` of group `key`. Two
    groups whose names' crc32 collide (about one pair in four billion) share their partitions'
    locks: a partition of one then waits while the same partition of the other runs elsewhere."""
    group = zlib.crc32(f"{key[0]}::{key[1]}".encode()) & 0xFFFF_FFFF
    return (_LOCK_CLASS << 48) | (group << 16) | partition


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


@dataclasses.dataclass(slots=True)
class _Epoch:
    """One runtime's run over a set of partitions: where each started, and how far it got."""

    owned: frozenset[int]
    floors: dict[int, int | None]  # each partition's checkpoint when the run began
    fed: int | None  # the key of the last event handed to the runtime
    saved: int | None  # the runtime's last checkpoint
    scanned: int | None = None  # the key of the last event read, ours or not
    advanced: int | None = None  # the last checkpoint written for idle partitions

    def on_save(self, checkpoint: int) -> None:
        self.saved = checkpoint


class _Front:
    """What a consumer of a shared group holds (a `PersistentSubscription`): it reads from its
    consumer of whichever runtime this process runs for the group now, and waits while the
    process owns no partition of it."""

    def __init__(self, shared: _SharedGroup, buffer_size: int) -> None:
        self._shared = shared
        self.buffer_size = buffer_size
        self.inner: Consumer | None = None
        self._changed = asyncio.Event()
        self._error: BaseException | None = None
        self.stopped = False

    def attach(self, inner: Consumer | None) -> Consumer | None:
        """Read from `inner` from now on; the consumer read before."""
        old, self.inner = self.inner, inner
        self._changed.set()
        return old

    def end(self, error: BaseException) -> None:
        """The group stopped: iteration raises `error`."""
        if self._error is None:
            self._error = error
        self._changed.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> RecordedEvent:
        while True:
            if self._error is not None:
                raise self._error
            if self.stopped:
                raise StopAsyncIteration
            inner = self.inner
            if inner is None:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                event = await anext(inner)
            except StopAsyncIteration:
                # Its runtime stopped (the process's partitions changed): wait for the next.
                if self.inner is inner:
                    self.inner = None
                continue
            except Exception as error:
                # The runtime dropped its consumers (its read failed): so does this one.
                self._error = error
                self._shared.disconnect(self)
                raise
            self._shared.delivered += 1
            return event

    async def ack(self, event: RecordedEvent) -> None:
        # An event of a partition given up since is simply not acked: its new owner has it.
        if self.inner is not None:
            await self.inner.ack(event)

    async def nack(self, event: RecordedEvent, action: NackAction) -> None:
        if self.inner is not None:
            await self.inner.nack(event, action)

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        member = self._shared.disconnect(self)
        inner = self.attach(None)
        if inner is not None:
            await inner.stop()
        if member:
            await self._shared.settle(self._shared)  # the member's count, and who owns what


class _SharedGroup:
    """This process's part of one group: its consumers, the partitions it holds, its runtime."""

    def __init__(
        self,
        record: GroupRecord,
        count: int,
        wake: asyncio.Event,
        settle: Callable[[_SharedGroup], Awaitable[None]],
    ) -> None:
        self.record = record
        self.key: GroupKey = (stream_key(record.stream), record.group)
        self.count = count  # the group's partitions
        self.fronts: list[_Front] = []
        self.held: set[int] = set()  # partitions whose lock this process holds
        self.owned: frozenset[int] = frozenset()  # partitions the runtime runs
        self.runtime: GroupRuntime | None = None
        self.epoch: _Epoch | None = None
        self.delivered = 0
        self._wake = wake
        self.settle = settle

    def connect(self, buffer_size: int) -> _Front:
        front = _Front(self, buffer_size)
        self.fronts.append(front)
        if self.runtime is not None:
            front.attach(self.runtime.connect(buffer_size))
        return front

    def disconnect(self, front: _Front) -> bool:
        """Forget a consumer; whether it was one of the group's."""
        if front not in self.fronts:
            return False
        self.fronts.remove(front)
        self._wake.set()
        return True


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
        self._shared: dict[GroupKey, _SharedGroup] = {}
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
        if not self._open:
            return
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            for key in list(self._shared):
                await self._stop(key, SubscriptionDropped("the event store was closed"))
        finally:
            if self._conn is not None and not self._conn.is_closed():
                self._conn.terminate()  # the locks go with it, after the checkpoints were stored
            self._conn = None
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
                    shared = _SharedGroup(record, count, self._wake, self._settle)
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
                        await conn.execute("SELECT pg_notify($1, $2)", MEMBERS_CHANNEL, _name(key))
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
                        await self._run(shared, frozenset())  # the locks went with the connection
                        shared.held.clear()
                if self._conn is not None and not self._conn.is_closed():
                    self._conn.terminate()
                self._conn = None
                await asyncio.sleep(HEARTBEAT)

    async def _settle(self, shared: _SharedGroup) -> None:
        """A consumer left: tell the other members now."""
        if self._open and self._shared.get(shared.key) is shared:
            async with self._lock:
                await self._round_now(shared)

    async def _round_now(self, shared: _SharedGroup) -> None:
        """A look at `shared` right away (under the lock); a failure is left to the loop."""
        if self._conn is None or self._conn.is_closed():
            self._wake.set()
            return
        try:
            await self._round(shared)
        except _CONNECTION_ERRORS:
            self._wake.set()

    async def _round(self, shared: _SharedGroup) -> None:
        """Refresh this member's row, drop dead members, take or give up partitions as the
        assignment says, act on a replay request, and checkpoint idle partitions."""
        conn = self._conn
        target, group = shared.key
        async with conn.transaction():
            await conn.execute(
                _UPSERT, target, group, self.member_id, self._pid, len(shared.fronts),
                shared.delivered,
            )  # fmt: skip
            gone = await conn.fetch(
                "DELETE FROM es_persistent_members m WHERE m.stream_key = $1"
                f" AND m.group_name = $2 AND m.member_id <> $4 AND NOT ({_LIVE})"
                " RETURNING m.member_id",
                target, group, MEMBER_TIMEOUT, self.member_id,
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
        if gone:
            logger.info("event=pg_group_members_gone group=%s members=%d", group, len(gone))
        if row is None or settings_from_json(row["settings"]) != shared.record.settings:
            # Deleted or updated by another process: its consumers reconnect, as they would here.
            name = _name(shared.key)
            error = GroupDeleted(f"{name} was deleted") if row is None else None
            self._shared.pop(shared.key, None)
            await self._shutdown(shared, error or GroupUpdated(f"{name} was updated"))
            return
        owners = assign((p["partition"] for p in parts), (m["member_id"] for m in members))
        mine = {p for p, owner in owners.items() if owner == self.member_id}
        changed = bool(gone)
        lost = shared.held - mine
        if lost:
            await self._run(shared, frozenset())
            await self._group_tables.flush()
            await conn.execute(
                "SELECT pg_advisory_unlock(k) FROM unnest($1::bigint[]) k",
                [lock_key(shared.key, p) for p in sorted(lost)],
            )
            shared.held -= lost
            changed = True
        gained = sorted(mine - shared.held)
        if gained:
            rows = await conn.fetch(
                "SELECT k, pg_try_advisory_lock(k) AS taken FROM unnest($1::bigint[]) k",
                [lock_key(shared.key, p) for p in gained],
            )
            taken = {r["k"] for r in rows if r["taken"]}
            shared.held |= {p for p in gained if lock_key(shared.key, p) in taken}
        if shared.held != shared.owned:
            await self._run(shared, frozenset(shared.held))
        if changed:
            await conn.execute("SELECT pg_notify($1, $2)", MEMBERS_CHANNEL, _name(shared.key))
        replayed = {p["partition"]: p["replayed"] for p in parts}
        await self._replay(shared, row["replay"], replayed)
        self._checkpoint_idle(shared)

    async def _replay(self, shared: _SharedGroup, request: int, replayed: dict[int, int]) -> None:
        """Move the parked events of the partitions held here that have not acted on replay
        request `request` into the runtime, ahead of new events."""
        due = {p for p in shared.owned if replayed.get(p, 0) < request}
        if not due or shared.runtime is None:
            return
        target, group = shared.key
        record = shared.record
        events = await self._group_tables.take_parked_of(
            group, record.stream, due, shared.count, record.settings.consumer_strategy, request
        )
        if events:
            logger.info(
                "event=persistent_replay group=%s target=%s events=%d", group, target, len(events)
            )
            shared.runtime.replay_parked(events)

    def _checkpoint_idle(self, shared: _SharedGroup) -> None:
        """When every event handed to the runtime is checkpointed, the partitions it runs are
        done up to the last event read, theirs or not: say so, or partitions that see no events
        would hold the group's checkpoint back."""
        epoch = shared.epoch
        if epoch is None or epoch.saved != epoch.fed or epoch.scanned is None:
            return
        if epoch.saved is not None and epoch.scanned <= epoch.saved:
            return
        if epoch.advanced is not None and epoch.scanned <= epoch.advanced:
            return
        epoch.advanced = epoch.scanned
        self._group_tables.advance(
            shared.record.group, shared.record.stream, sorted(epoch.owned), epoch.scanned
        )

    # -- running partitions ----------------------------------------------------------------------

    async def _run(self, shared: _SharedGroup, owned: frozenset[int]) -> None:
        """Stop the runtime of the partitions run so far (its checkpoints queued) and start one
        over `owned`, from each partition's checkpoint; the consumers move to it."""
        old, shared.runtime, shared.epoch = shared.runtime, None, None
        if old is not None:
            await old.stop(None)
            for front in shared.fronts:
                inner = front.attach(None)
                if inner is not None:
                    await inner.stop()  # what it was handed and not read is delivered anew
        if owned != shared.owned:
            logger.info(
                "event=pg_group_partitions group=%s target=%s partitions=%s",
                shared.key[1],
                shared.key[0],
                ",".join(str(p) for p in sorted(owned)) or "-",
            )
        shared.owned = owned
        if not owned:
            return
        stored = await self._group_tables.partitions(shared.record.group, shared.record.stream)
        floors = {p: stored.get(p, (None, 0))[0] for p in owned}
        start = (
            None if None in floors.values() else min(f for f in floors.values() if f is not None)
        )
        epoch = _Epoch(owned=owned, floors=floors, fed=start, saved=start)
        record = dataclasses.replace(shared.record, checkpoint=start)
        runtime = GroupRuntime(
            record,
            partial(self._partition_feed, shared, epoch),
            self._group_tables.for_partitions(owned, epoch.on_save),
        )
        runtime.start()
        shared.runtime, shared.epoch = runtime, epoch
        for front in shared.fronts:
            if not front.stopped:
                front.attach(runtime.connect(front.buffer_size))

    async def _partition_feed(
        self, shared: _SharedGroup, epoch: _Epoch, record: GroupRecord, after: int | None
    ) -> AsyncIterator[RecordedEvent]:
        """The group's target after `after`, one read for every partition run here: the events
        of the partitions in `epoch` that are past their partition's checkpoint."""
        on_stream = record.stream is not None
        count, owned, floors = shared.count, epoch.owned, epoch.floors
        strategy = record.settings.consumer_strategy
        source = self._feed(record, after)
        try:
            async for event in source:
                placed = event if event.link is None else event.link
                key = placed.version if on_stream else placed.position
                part = partition_of(partition_key(strategy, event.stream, event.metadata), count)
                if part in owned:
                    floor = floors[part]
                    if floor is None or key > floor:
                        epoch.fed = epoch.scanned = key
                        yield event
                        continue
                epoch.scanned = key
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _shutdown(self, shared: _SharedGroup, error: BaseException) -> None:
        """Stop this process's part of a group: consumers end with `error`, checkpoints are
        stored before the locks go, and the member leaves."""
        for front in list(shared.fronts):
            front.end(error)
        shared.fronts.clear()
        await self._run(shared, frozenset())
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
            await conn.execute("SELECT pg_notify($1, $2)", MEMBERS_CHANNEL, _name(shared.key))
        shared.held.clear()


def _name(key: GroupKey) -> str:
    return f"{key[0]}::{key[1]}"
