"""Persistent-subscription groups kept in streams, as EventStoreDB keeps them, for the shared
engine (`eventstore.persistent`): the `GroupStorage` and the `Feed` of the test server.

- definitions: one `PersistentConfig1` event in `$persistentSubscriptionConfig` holding every group;
- checkpoints: `$SubscriptionCheckpoint` events in the group's
  `$persistentsubscription-<source>::<group>-checkpoint` (a revision, or `C:x/P:x` for `$all`);
- parked events: links in `...-parked`; a replay truncates the stream before what it took (`$tb`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

from eventstore.persistent.group import Feed
from eventstore.persistent.records import GroupDefinition, GroupRecord, stream_key
from eventstore.port import (
    ANY,
    ConsumerStrategy,
    EventFilter,
    NewEvent,
    RecordedEvent,
    StreamDeleted,
    SubscriptionSettings,
    WrongExpectedVersion,
)

from .backend import EVERYTHING, LINK_TYPE, Backend, link_to
from .convert import first_position_at_or_after
from .filters import hidden_from_all
from .group_config import (
    CONFIG_EVENT_TYPE,
    CONFIG_STREAM,
    GroupSettings,
    checkpoint_text,
    config_document,
    parse_config,
)

logger = logging.getLogger(__name__)

_PARKED_METADATA = json.dumps({"$parkedReason": "parked"}).encode()
_RETRY_MAX = 1.0


def subscription_id(group: str, stream: str | None) -> str:
    """`<stream or $all>::<group>`, as EventStoreDB names a group."""
    return f"{stream_key(stream)}::{group}"


def checkpoint_stream(group: str, stream: str | None) -> str:
    return f"$persistentsubscription-{subscription_id(group, stream)}-checkpoint"


def parked_stream(group: str, stream: str | None) -> str:
    return f"$persistentsubscription-{subscription_id(group, stream)}-parked"


def engine_settings(settings: GroupSettings) -> SubscriptionSettings:
    """EventStoreDB's settings in the engine's terms: inclusive versions and store positions. The
    `$all` filter, link resolution and the buffer sizes stay with the feed and GetInfo."""
    start = settings.start_from
    if start is None or start == -1:
        start_from = None
    elif settings.stream is not None:
        start_from = start + 1  # revision r is version r + 1
    else:
        start_from = first_position_at_or_after(start)
    return SubscriptionSettings(
        start_from=start_from,
        from_end=start == -1,
        filter=EventFilter(include_system=True),
        message_timeout=settings.message_timeout_ms / 1000,
        max_retry_count=settings.max_retry_count,
        consumer_strategy=ConsumerStrategy(settings.consumer_strategy),
        max_subscriber_count=settings.max_subscriber_count,
        checkpoint_after=settings.checkpoint_after_ms / 1000,
        min_checkpoint_count=settings.min_checkpoint_count,
        max_checkpoint_count=settings.max_checkpoint_count,
    )


@dataclass(slots=True, kw_only=True)
class _Group:
    settings: GroupSettings
    start_after: int | None
    checkpoint: int | None


class StreamGroupStorage:
    """The `GroupStorage` of the test server (see the module doc).

    The engine stores port settings; the gRPC service says which EventStoreDB settings a Create or
    Update carries with `describing`, and they are what the config keeps and GetInfo reports.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._groups: dict[tuple[str, str], _Group] = {}
        self._described: dict[tuple[str, str], GroupSettings] = {}
        self._writes: asyncio.Queue[Callable[[], Awaitable[object]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def describing(self, settings: GroupSettings) -> Iterator[None]:
        """The settings the group's insert or update within this block stores."""
        key = (stream_key(settings.stream), settings.group)
        self._described[key] = settings
        try:
            yield
        finally:
            self._described.pop(key, None)

    def settings(self, group: str, stream: str | None) -> GroupSettings | None:
        """A group's EventStoreDB settings; None when there is no such group."""
        entry = self._groups.get((stream_key(stream), group))
        return None if entry is None else entry.settings

    # -- GroupStorage ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the groups and their checkpoints, and start the task that stores the writes."""
        last = await self._backend.last_event(CONFIG_STREAM)
        if last is not None and last.type == CONFIG_EVENT_TYPE:
            for settings, start_after in parse_config(last.data):
                checkpoint = await self._load_checkpoint(settings)
                self._groups[(stream_key(settings.stream), settings.group)] = _Group(
                    settings=settings, start_after=start_after, checkpoint=checkpoint
                )
        self._task = asyncio.create_task(self._store_writes(), name="esdb group writes")

    async def close(self) -> None:
        """Store what is queued, then stop."""
        if self._task is not None:
            self._writes.put_nowait(None)
            await self._task
            self._task = None

    def park(self, group: str, stream: str | None, events: list[RecordedEvent]) -> None:
        # The links get their ids now, so a retried append is the idempotent same one.
        links = [link_to(event, metadata=_PARKED_METADATA) for event in events]
        target = parked_stream(group, stream)
        self._writes.put_nowait(lambda: self._backend.store.append(target, links, ANY))

    def save_checkpoint(self, group: str, stream: str | None, checkpoint: int) -> None:
        entry = self._groups.get((stream_key(stream), group))
        if entry is None:
            return
        entry.checkpoint = checkpoint
        data = json.dumps(checkpoint_text(entry.settings, checkpoint)).encode()
        event = NewEvent(id=uuid.uuid4(), type="$SubscriptionCheckpoint", data=data)
        target = checkpoint_stream(group, stream)
        self._writes.put_nowait(lambda: self._backend.store.append(target, [event], ANY))

    async def insert_group(self, record: GroupRecord) -> bool:
        key = (stream_key(record.stream), record.group)
        if key in self._groups:
            return False
        settings = self._described.get(key) or GroupSettings(
            stream=record.stream, group=record.group
        )
        self._groups[key] = _Group(
            settings=settings, start_after=record.start_after, checkpoint=None
        )
        await self._save_config()
        return True

    async def update_group(self, definition: GroupDefinition) -> None:
        key = (stream_key(definition.stream), definition.group)
        entry = self._groups[key]
        entry.settings = self._described.get(key, entry.settings)
        entry.start_after = definition.start_after
        await self._save_config()

    async def delete_group(self, group: str, stream: str | None) -> bool:
        if self._groups.pop((stream_key(stream), group), None) is None:
            return False
        await self._save_config()
        await self._flush()
        for extra in (checkpoint_stream(group, stream), parked_stream(group, stream)):
            with contextlib.suppress(WrongExpectedVersion, StreamDeleted):
                await self._backend.store.delete_stream(extra, ANY)
        return True

    async def get_group(self, group: str, stream: str | None) -> GroupRecord | None:
        entry = self._groups.get((stream_key(stream), group))
        return None if entry is None else _record(entry)

    async def list_groups(self, stream: str | None, *, every_stream: bool) -> list[GroupRecord]:
        return [
            _record(entry)
            for entry in self._groups.values()
            if every_stream or entry.settings.stream == stream
        ]

    async def count_parked(self, group: str, stream: str | None) -> int:
        return len(await self._parked_links(group, stream))

    async def list_parked(
        self, group: str, stream: str | None, limit: int | None
    ) -> list[RecordedEvent]:
        links = await self._parked_links(group, stream)
        events = [await self._backend.resolve(link) for link in links[:limit]]
        return [event for event in events if event is not None]

    async def take_parked(self, group: str, stream: str | None) -> list[RecordedEvent]:
        """The parked events, each delivered through its parked link (acked by the link's id),
        and the parked stream truncated before them."""
        links = await self._parked_links(group, stream)
        taken = []
        for link in links:
            target = await self._backend.resolve(link)
            if target is not None:
                taken.append(dataclasses.replace(target, link=link))
        if links:
            parked = parked_stream(group, stream)
            metadata = await self._backend.store.get_stream_metadata(parked)
            metadata["$tb"] = links[-1].version  # a revision: hides the versions up to it
            await self._backend.store.set_stream_metadata(parked, metadata)
        return taken

    # -- internals -------------------------------------------------------------------------------

    async def _load_checkpoint(self, settings: GroupSettings) -> int | None:
        last = await self._backend.last_event(checkpoint_stream(settings.group, settings.stream))
        if last is None:
            return None
        text = json.loads(last.data)
        if settings.stream is not None:
            return int(text) + 1  # a revision, as a version
        commit = int(str(text).split("/")[0].split(":")[1])
        return first_position_at_or_after(commit)

    async def _save_config(self) -> None:
        entries = [(entry.settings, entry.start_after) for entry in self._groups.values()]
        event = NewEvent(id=uuid.uuid4(), type=CONFIG_EVENT_TYPE, data=config_document(entries))
        await self._backend.store.append(CONFIG_STREAM, [event], ANY)

    async def _parked_links(self, group: str, stream: str | None) -> list[RecordedEvent]:
        await self._flush()
        try:
            return [
                link
                async for link in self._backend.iter_stream(
                    parked_stream(group, stream), after_version=None
                )
            ]
        except StreamDeleted:
            return []

    async def _flush(self) -> None:
        """Wait for every write queued so far to be stored."""
        await self._writes.join()

    async def _store_writes(self) -> None:
        """Store the queued writes in order, each retried until it is stored."""
        while True:
            write = await self._writes.get()
            try:
                if write is None:
                    return
                delay = 0.05
                while True:
                    try:
                        await write()
                        break
                    except Exception as error:
                        logger.warning("event=esdb_group_write_failed error=%s", error)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, _RETRY_MAX)
            finally:
                self._writes.task_done()


def _record(entry: _Group) -> GroupRecord:
    settings = entry.settings
    return GroupRecord(
        group=settings.group,
        stream=settings.stream,
        settings=engine_settings(settings),
        start_after=entry.start_after,
        checkpoint=entry.checkpoint,
    )


def stream_feed(backend: Backend, storage: StreamGroupStorage) -> Feed:
    """Groups read as EventStoreDB reads them: `$all` without the hidden streams and through the
    group's own filter, links resolved when the group asks for it."""

    async def feed(record: GroupRecord, after: int | None) -> AsyncIterator[RecordedEvent]:
        settings = storage.settings(record.group, record.stream) or GroupSettings(
            stream=record.stream, group=record.group
        )
        selected = settings.compiled_filter()
        store = backend.store
        source = (
            store.subscribe_all(after_position=after, filter=EVERYTHING)
            if record.stream is None
            else store.subscribe_stream(record.stream, after_version=after)
        )
        try:
            async with contextlib.aclosing(source):  # type: ignore[type-var]
                async for event in source:
                    if record.stream is None and (
                        hidden_from_all(event)
                        or (selected is not None and not selected.matches(event))
                    ):
                        continue
                    if settings.resolve_links and event.type == LINK_TYPE:
                        target = await backend.resolve(event)
                        if target is not None:
                            event = dataclasses.replace(target, link=event)
                    yield event
        except StreamDeleted:
            # A tombstoned stream has nothing more to deliver; the group stays, idle.
            logger.info("event=group_source_tombstoned group=%s", record.group)
            await asyncio.Event().wait()

    return feed
