"""Every persistent-subscription group of one store: the port's persistent-subscription methods
over a `GroupStorage`. A group runs (`GroupRuntime`) from its first consumer or parked replay until
the store closes, and feeds on the store's own catch-up subscriptions unless given another
`Feed`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from eventstore.persistent.group import Feed, GroupRuntime
from eventstore.persistent.records import GroupDefinition, GroupRecord, stream_key
from eventstore.persistent.storage import GroupStorage
from eventstore.port import (
    EventStore,
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

logger = logging.getLogger(__name__)

Guard = Callable[[], AbstractAsyncContextManager[None]]
"""Wraps every call of the port's methods (see `PersistentGroups`)."""

GroupKey = tuple[str, str]
"""(`stream_key` of the target, group name)."""


class GroupDeleted(SubscriptionDropped):
    """How a deleted group's consumers end."""


class GroupUpdated(SubscriptionDropped):
    """How the consumers of a group whose settings changed end (they may reconnect)."""


def store_feed(store: EventStore) -> Feed:
    """Groups fed by `store`'s catch-up subscriptions (the group's filter applies to `$all`)."""

    def feed(record: GroupRecord, after: int | None) -> AsyncIterator[RecordedEvent]:
        if record.stream is None:
            return store.subscribe_all(after_position=after, filter=record.settings.filter)
        return store.subscribe_stream(record.stream, after_version=after)

    return feed


class PersistentGroups:
    """The groups of one store. `store` is used only through the `EventStore` port (catch-up
    subscriptions and reads); `storage` keeps definitions, checkpoints and parked events; `feed`
    reads a group's target (the store's catch-up subscriptions unless given).

    `guard`, when given, wraps every call (the PostgreSQL store turns a lost connection into
    `StoreUnavailable` there). A store whose groups are shared by several processes overrides
    the consuming methods and `_stop` to decide which process runs which part of a group (see
    `eventstore.postgres.persistent`).
    """

    def __init__(
        self,
        store: EventStore,
        storage: GroupStorage,
        *,
        guard: Guard | None = None,
        feed: Feed | None = None,
    ) -> None:
        self._store = store
        self._tables = storage
        self._feed = store_feed(store) if feed is None else feed
        self._store_guard = guard
        self._runtimes: dict[GroupKey, GroupRuntime] = {}
        self._open = False

    async def start(self) -> None:
        """Open the storage. Groups start running when a consumer connects."""
        await self._tables.start()
        self._open = True

    async def close(self) -> None:
        """Stop every group (consumers end with `SubscriptionDropped`), save checkpoints."""
        if not self._open:
            return
        self._open = False
        try:
            for key in list(self._runtimes):
                await self._stop(key, SubscriptionDropped("the event store was closed"))
        finally:
            await self._tables.close()

    # -- definitions -----------------------------------------------------------------------------

    async def create_subscription(
        self, group: str, *, stream: str | None = None, settings: SubscriptionSettings
    ) -> None:
        """Create a group. Raises `SubscriptionGroupExists`."""
        async with self._guard():
            if await self._tables.get_group(group, stream) is not None:
                raise SubscriptionGroupExists(f"{stream_key(stream)}::{group} already exists")
            record = GroupRecord(
                group=group,
                stream=stream,
                settings=settings,
                start_after=await self._start_after(stream, settings),
                checkpoint=None,
            )
            if not await self._tables.insert_group(record):
                raise SubscriptionGroupExists(f"{stream_key(stream)}::{group} already exists")

    async def update_subscription(
        self, group: str, *, stream: str | None = None, settings: SubscriptionSettings
    ) -> None:
        """Change a group's settings. Connected consumers are dropped, as EventStoreDB drops them;
        the checkpoint stays, so a new start point matters only to a group without one."""
        async with self._guard():
            record = await self._record(group, stream)
            start_after = record.start_after
            old = record.settings
            if (settings.start_from, settings.from_end) != (old.start_from, old.from_end):
                start_after = await self._start_after(stream, settings)
            target = stream_key(stream)
            await self._stop((target, group), GroupUpdated(f"{target}::{group} was updated"))
            await self._tables.update_group(
                GroupDefinition(
                    group=group, stream=stream, settings=settings, start_after=start_after
                )
            )

    async def delete_subscription(self, group: str, *, stream: str | None = None) -> None:
        """Delete a group and its parked events; its consumers get `SubscriptionDropped`."""
        async with self._guard():
            target = stream_key(stream)
            await self._stop((target, group), GroupDeleted(f"{target}::{group} was deleted"))
            if not await self._tables.delete_group(group, stream):
                raise SubscriptionGroupNotFound(f"{target}::{group} does not exist")

    async def get_subscription_info(
        self, group: str, *, stream: str | None = None
    ) -> SubscriptionInfo:
        """What is known of one group. Raises `SubscriptionGroupNotFound`."""
        async with self._guard():
            return await self._info(await self._record(group, stream))

    async def list_subscriptions(self, *, stream: str | None = None) -> list[SubscriptionInfo]:
        """Every group (of every target) when `stream` is None, else the groups on `stream`,
        as esdbclient's `list_subscriptions()` and `list_subscriptions_to_stream(stream)`."""
        async with self._guard():
            records = await self._tables.list_groups(stream, every_stream=stream is None)
            return [await self._info(record) for record in records]

    # -- consuming -------------------------------------------------------------------------------

    async def read_subscription(
        self, group: str, *, stream: str | None = None, buffer_size: int = 100
    ) -> PersistentSubscription:
        """Connect a consumer. Raises `SubscriptionGroupNotFound`, `MaxSubscribersReached`."""
        async with self._guard():
            runtime = await self._runtime(group, stream)
            limit = runtime.record.settings.max_subscriber_count
            if limit > 0 and len(runtime.consumers) >= limit:
                raise MaxSubscribersReached(
                    f"Maximum subscriptions reached: {stream_key(stream)}::{group} allows {limit}"
                )
            return runtime.connect(buffer_size)

    async def list_parked(
        self, group: str, *, stream: str | None = None, limit: int = 100
    ) -> list[RecordedEvent]:
        """The group's parked events, oldest first."""
        async with self._guard():
            await self._record(group, stream)
            return await self._tables.list_parked(group, stream, limit)

    async def replay_parked(self, group: str, *, stream: str | None = None) -> None:
        """Redeliver every parked event ahead of new ones; the parked list becomes empty."""
        async with self._guard():
            runtime = await self._runtime(group, stream)
            events = await self._tables.take_parked(group, stream)
            if events:
                logger.info(
                    "event=persistent_replay group=%s target=%s events=%d",
                    group,
                    stream_key(stream),
                    len(events),
                )
                runtime.replay_parked(events)

    def running(self, group: str, stream: str | None) -> GroupRuntime | None:
        """The group's runtime while it runs in this process (for statistics)."""
        return self._runtimes.get((stream_key(stream), group))

    async def restart(self) -> None:
        """Stop every running group (consumers end with `SubscriptionDropped` and reconnect); each
        runs again from its checkpoint when a consumer connects."""
        async with self._guard():
            for key in list(self._runtimes):
                await self._stop(key, SubscriptionDropped("persistent subscriptions restarted"))

    # -- who runs a group ------------------------------------------------------------------------

    async def _stop(self, key: GroupKey, error: BaseException) -> None:
        """Stop a running group; its consumers end with `error`."""
        runtime = self._runtimes.pop(key, None)
        if runtime is not None:
            await runtime.stop(error)

    # -- internals -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        if not self._open:
            raise StoreUnavailable("persistent subscriptions are closed")
        if self._store_guard is None:
            yield
            return
        async with self._store_guard():
            yield

    async def _record(self, group: str, stream: str | None) -> GroupRecord:
        record = await self._tables.get_group(group, stream)
        if record is None:
            raise SubscriptionGroupNotFound(f"{stream_key(stream)}::{group} does not exist")
        return record

    async def _runtime(self, group: str, stream: str | None) -> GroupRuntime:
        key = (stream_key(stream), group)
        runtime = self._runtimes.get(key)
        if runtime is None:
            record = await self._record(group, stream)
            # Consumers connecting at once all wait for the record: only the first makes the
            # runtime, or the others would each run the group too and deliver it twice.
            runtime = self._runtimes.get(key)
            if runtime is not None:
                return runtime
            runtime = GroupRuntime(record, self._feed, self._tables)
            self._runtimes[key] = runtime
            runtime.start()
        return runtime

    async def _info(self, record: GroupRecord) -> SubscriptionInfo:
        runtime = self._runtimes.get((stream_key(record.stream), record.group))
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
