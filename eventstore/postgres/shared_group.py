"""This process's part of one persistent-subscription group shared on PostgreSQL: the consumers
connected here (`SharedConsumer`), the partitions whose locks it holds, and the one runtime it
runs over them (`SharedGroup`). How members agree on who holds what is `persistent`'s."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, Self

from eventstore.persistent.consumer import Consumer
from eventstore.persistent.group import Feed, GroupRuntime
from eventstore.persistent.groups import GroupKey
from eventstore.persistent.records import GroupRecord, stream_key
from eventstore.port import NackAction, RecordedEvent
from eventstore.postgres.persistent_tables import (
    PostgresGroupTables,
    partition_key,
    partition_of,
)

logger = logging.getLogger(__name__)

_LOCK_CLASS = 0x6F70  # the top bits of the advisory-lock keys of group partitions


def lock_key(key: GroupKey, partition: int) -> int:
    """The session advisory lock held by the process running `partition` of group `key`. Two
    groups whose names' crc32 collide (about one pair in four billion) share their partitions'
    locks: a partition of one then waits while the same partition of the other runs elsewhere."""
    group = zlib.crc32(f"{key[0]}::{key[1]}".encode()) & 0xFFFF_FFFF
    return (_LOCK_CLASS << 48) | (group << 16) | partition


def group_name(key: GroupKey) -> str:
    """`<target>::<group>`, as logs and notifications name a group."""
    return f"{key[0]}::{key[1]}"


@dataclasses.dataclass(slots=True)
class Epoch:
    """One runtime's run over a set of partitions: where each started, and how far it got."""

    owned: frozenset[int]
    floors: dict[int, int | None]  # each partition's checkpoint when the run began
    fed: int | None  # the key of the last event handed to the runtime
    saved: int | None  # the runtime's last checkpoint
    scanned: int | None = None  # the key of the last event read, ours or not
    advanced: int | None = None  # the last checkpoint written for idle partitions

    def on_save(self, checkpoint: int) -> None:
        self.saved = checkpoint


class SharedConsumer:
    """What a consumer of a shared group holds (a `PersistentSubscription`): it reads from its
    consumer of whichever runtime this process runs for the group now, and waits while the
    process owns no partition of it."""

    def __init__(self, shared: SharedGroup, buffer_size: int) -> None:
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


class SharedGroup:
    """This process's part of one group: its consumers, the partitions it holds, its runtime
    (fed by `feed`, its state in `tables`)."""

    def __init__(
        self,
        record: GroupRecord,
        count: int,
        *,
        wake: asyncio.Event,
        settle: Callable[[SharedGroup], Awaitable[None]],
        tables: PostgresGroupTables,
        feed: Feed,
    ) -> None:
        self.record = record
        self.key: GroupKey = (stream_key(record.stream), record.group)
        self.count = count  # the group's partitions
        self.fronts: list[SharedConsumer] = []
        self.held: set[int] = set()  # partitions whose lock this process holds
        self.owned: frozenset[int] = frozenset()  # partitions the runtime runs
        self.runtime: GroupRuntime | None = None
        self.epoch: Epoch | None = None
        self.delivered = 0
        self._wake = wake
        self.settle = settle
        self._tables = tables
        self._feed = feed

    def connect(self, buffer_size: int) -> SharedConsumer:
        front = SharedConsumer(self, buffer_size)
        self.fronts.append(front)
        if self.runtime is not None:
            front.attach(self.runtime.connect(buffer_size))
        return front

    def disconnect(self, front: SharedConsumer) -> bool:
        """Forget a consumer; whether it was one of the group's."""
        if front not in self.fronts:
            return False
        self.fronts.remove(front)
        self._wake.set()
        return True

    # -- the partitions held here ----------------------------------------------------------------

    async def hold(self, conn: Any, mine: set[int]) -> bool:
        """Give up the partitions held here that are no longer `mine` (stopping the runtime and
        storing its checkpoints before unlocking), take the locks of the new ones that are free,
        and run what is held; whether any partition was given up."""
        lost = self.held - mine
        if lost:
            await self.run(frozenset())
            await self._tables.flush()
            await conn.execute(
                "SELECT pg_advisory_unlock(k) FROM unnest($1::bigint[]) k",
                [lock_key(self.key, p) for p in sorted(lost)],
            )
            self.held -= lost
        gained = sorted(mine - self.held)
        if gained:
            rows = await conn.fetch(
                "SELECT k, pg_try_advisory_lock(k) AS taken FROM unnest($1::bigint[]) k",
                [lock_key(self.key, p) for p in gained],
            )
            taken = {r["k"] for r in rows if r["taken"]}
            self.held |= {p for p in gained if lock_key(self.key, p) in taken}
        if self.held != self.owned:
            await self.run(frozenset(self.held))
        return bool(lost)

    async def replay(self, request: int, replayed: dict[int, int]) -> None:
        """Move the parked events of the partitions held here that have not acted on replay
        request `request` into the runtime, ahead of new events."""
        due = {p for p in self.owned if replayed.get(p, 0) < request}
        if not due or self.runtime is None:
            return
        target, group = self.key
        record = self.record
        events = await self._tables.take_parked_of(
            group, record.stream, due, self.count, record.settings.consumer_strategy, request
        )
        if events:
            logger.info(
                "event=persistent_replay group=%s target=%s events=%d", group, target, len(events)
            )
            self.runtime.replay_parked(events)

    def checkpoint_idle(self) -> None:
        """When every event handed to the runtime is checkpointed, the partitions it runs are
        done up to the last event read, theirs or not: say so, or partitions that see no events
        would hold the group's checkpoint back."""
        epoch = self.epoch
        if epoch is None or epoch.saved != epoch.fed or epoch.scanned is None:
            return
        if epoch.saved is not None and epoch.scanned <= epoch.saved:
            return
        if epoch.advanced is not None and epoch.scanned <= epoch.advanced:
            return
        epoch.advanced = epoch.scanned
        self._tables.advance(
            self.record.group, self.record.stream, sorted(epoch.owned), epoch.scanned
        )

    # -- the runtime -----------------------------------------------------------------------------

    async def run(self, owned: frozenset[int]) -> None:
        """Stop the runtime of the partitions run so far (its checkpoints queued) and start one
        over `owned`, from each partition's checkpoint; the consumers move to it."""
        old, self.runtime, self.epoch = self.runtime, None, None
        if old is not None:
            await old.stop(None)
            for front in self.fronts:
                inner = front.attach(None)
                if inner is not None:
                    await inner.stop()  # what it was handed and not read is delivered anew
        if owned != self.owned:
            logger.info(
                "event=pg_group_partitions group=%s target=%s partitions=%s",
                self.key[1],
                self.key[0],
                ",".join(str(p) for p in sorted(owned)) or "-",
            )
        self.owned = owned
        if not owned:
            return
        stored = await self._tables.partitions(self.record.group, self.record.stream)
        floors = {p: stored.get(p, (None, 0))[0] for p in owned}
        start = (
            None if None in floors.values() else min(f for f in floors.values() if f is not None)
        )
        epoch = Epoch(owned=owned, floors=floors, fed=start, saved=start)
        record = dataclasses.replace(self.record, checkpoint=start)
        runtime = GroupRuntime(
            record,
            partial(self._partition_feed, epoch),
            self._tables.for_partitions(owned, epoch.on_save),
        )
        runtime.start()
        self.runtime, self.epoch = runtime, epoch
        for front in self.fronts:
            if not front.stopped:
                front.attach(runtime.connect(front.buffer_size))

    async def _partition_feed(
        self, epoch: Epoch, record: GroupRecord, after: int | None
    ) -> AsyncIterator[RecordedEvent]:
        """The group's target after `after`, one read for every partition run here: the events
        of the partitions in `epoch` that are past their partition's checkpoint."""
        on_stream = record.stream is not None
        count, owned, floors = self.count, epoch.owned, epoch.floors
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
