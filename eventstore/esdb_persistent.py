"""Persistent subscriptions on EventStoreDB: groups, consumers and parked events, in port terms."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Literal, TypedDict, cast

from esdbclient.exceptions import (
    CancelledByClient,
    EventStoreDBClientException,
    NotFound,
    ProgrammingError,
)
from esdbclient.persistent import ConsumerStrategy as EsdbConsumerStrategy
from esdbclient.protos.Grpc import persistent_pb2

from eventstore.esdb_client import AckingPersistentSubscription, EsdbClient
from eventstore.esdb_errors import translated
from eventstore.esdb_mapping import server_filter, to_recorded
from eventstore.port import (
    ConsumerStrategy,
    EventFilter,
    NackAction,
    RecordedEvent,
    SubscriptionDropped,
    SubscriptionGroupNotFound,
    SubscriptionInfo,
    SubscriptionSettings,
)

log = logging.getLogger(__name__)

_NACK_ACTIONS: dict[NackAction, Literal["park", "retry", "skip", "stop"]] = {
    NackAction.PARK: "park",
    NackAction.RETRY: "retry",
    NackAction.SKIP: "skip",
    NackAction.STOP: "stop",
}

ALL = "$all"
# How long stop() waits for the reader task once the call is cancelled (it ends at once normally).
READER_STOP_TIMEOUT = 2.0


class _End:
    """The queue's marker for a subscription that ended normally."""


_END = _End()


def parked_stream(group: str, stream: str | None) -> str:
    """Where EventStoreDB keeps links to a group's parked events."""
    return f"$persistentsubscription-{stream or ALL}::{group}-parked"


def _group_not_found(group: str, stream: str | None) -> SubscriptionGroupNotFound:
    return SubscriptionGroupNotFound(
        f"no persistent subscription group {group!r} on {stream or ALL}"
    )


class EsdbPersistentSubscription:
    """One consumer of a group, implementing the port's `PersistentSubscription`.

    A reader task drains esdbclient's consumer into a queue that `__anext__` awaits: esdbclient
    stops the whole subscription when an await on it is cancelled, and consumers legitimately
    cancel waits (`asyncio.wait_for(anext(sub), ...)`).

    `residual` is the group's filter when this process knows it: deliveries it rejects (the part
    of a filter EventStoreDB could not apply) are acknowledged here and never surface.
    """

    def __init__(
        self, consumer: AckingPersistentSubscription, *, residual: EventFilter | None
    ) -> None:
        self._consumer = consumer
        self._residual = residual
        self._stopped = False
        self._queue: asyncio.Queue[RecordedEvent | _End | SubscriptionDropped] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(), name=f"esdb-consumer-{id(self)}")

    async def _read(self) -> None:
        end: _End | SubscriptionDropped = _END
        try:
            async for delivery in self._consumer.inner:
                event = to_recorded(delivery, delivery=True)
                if self._residual is None or self._residual.matches(event):
                    self._queue.put_nowait(event)
                else:
                    await self._consumer.inner.ack(delivery.ack_id)
            if not self._stopped:
                end = SubscriptionDropped("the server ended the subscription")
        except CancelledByClient:
            pass
        except EventStoreDBClientException as error:
            if not self._stopped:
                end = SubscriptionDropped(f"{type(error).__name__}: {error}")
                end.__cause__ = error
        finally:
            self._queue.put_nowait(end)

    def __aiter__(self) -> EsdbPersistentSubscription:
        return self

    async def __anext__(self) -> RecordedEvent:
        item = await self._queue.get()
        if isinstance(item, RecordedEvent):
            return item
        self._queue.put_nowait(item)  # the end is sticky: every later call sees it too
        if isinstance(item, SubscriptionDropped):
            raise item
        raise StopAsyncIteration

    async def ack(self, event: RecordedEvent) -> None:
        """Acknowledge a delivery (sent in a batch within `esdb_client.ACK_DELAY`). Raises
        `SubscriptionDropped` when the subscription already ended (its server was lost): the
        delivery will come again."""
        try:
            await self._consumer.inner.ack(event.ack_id or event.id)
        except ProgrammingError as error:
            raise SubscriptionDropped(f"the subscription ended before the ack: {error}") from error

    async def nack(self, event: RecordedEvent, action: NackAction) -> None:
        """Tell the server what to do with a delivery this consumer could not handle (as
        `ack`, `SubscriptionDropped` once the subscription ended)."""
        try:
            await self._consumer.inner.nack(event.ack_id or event.id, _NACK_ACTIONS[action])
        except ProgrammingError as error:
            raise SubscriptionDropped(f"the subscription ended before the nack: {error}") from error

    async def stop(self) -> None:
        """Flush pending acks and nacks, then disconnect; iteration ends."""
        if self._stopped:
            return
        self._stopped = True
        await self._consumer.stop()
        try:
            await asyncio.wait_for(self._reader, READER_STOP_TIMEOUT)
        except TimeoutError:
            log.warning("event=esdb_persistent_reader_stuck")
        self._queue.put_nowait(_END)


class EsdbGroups:
    """Persistent-subscription groups through one client.

    EventStoreDB does not report a group's filter back, so filters given to create/update in this
    process are remembered here (to complete what the server filtered, and to report them in info).
    """

    def __init__(self, live: Callable[[], EsdbClient]) -> None:
        self._live = live
        self._filters: dict[tuple[str | None, str], EventFilter] = {}

    async def create_subscription(
        self, group: str, *, stream: str | None = None, settings: SubscriptionSettings
    ) -> None:
        """Create a group on one stream or on $all; `SubscriptionGroupExists` if it is there
        already."""
        client = self._live()
        common = _common_settings(settings)
        with translated(stream or ALL):
            if stream is None:
                narrowed = server_filter(settings.filter)
                await _untyped(client.create_subscription_to_all)(
                    group,
                    from_end=settings.from_end,
                    commit_position=None if settings.from_end else settings.start_from,
                    filter_include=narrowed.filter_include,
                    filter_exclude=narrowed.filter_exclude,
                    filter_by_stream_name=narrowed.filter_by_stream_name,
                    **common,
                )
            else:
                await _untyped(client.create_subscription_to_stream)(
                    group,
                    stream,
                    from_end=settings.from_end,
                    stream_position=_stream_start(settings),
                    **common,
                )
        self._filters[(stream, group)] = settings.filter

    async def update_subscription(
        self, group: str, *, stream: str | None = None, settings: SubscriptionSettings
    ) -> None:
        """Change a group's settings (EventStoreDB keeps the filter it was created with)."""
        client = self._live()
        common = _common_settings(settings)
        with translated(stream or ALL):
            try:
                if stream is None:
                    await _untyped(client.update_subscription_to_all)(
                        group,
                        from_end=settings.from_end,
                        commit_position=None if settings.from_end else settings.start_from,
                        **common,
                    )
                else:
                    await _untyped(client.update_subscription_to_stream)(
                        group,
                        stream,
                        from_end=settings.from_end,
                        stream_position=_stream_start(settings),
                        **common,
                    )
            except NotFound:
                raise _group_not_found(group, stream) from None

    async def delete_subscription(self, group: str, *, stream: str | None = None) -> None:
        """Delete a group (`SubscriptionGroupNotFound` if absent); its consumers are dropped."""
        client = self._live()
        with translated(stream or ALL):
            try:
                await client.delete_subscription(group, stream)
            except NotFound:
                raise _group_not_found(group, stream) from None
        self._filters.pop((stream, group), None)

    async def get_subscription_info(
        self, group: str, *, stream: str | None = None
    ) -> SubscriptionInfo:
        """What the server reports about a group."""
        client = self._live()
        with translated(stream or ALL):
            try:
                raw = await client.subscription_info_raw(group, stream)
            except NotFound:
                raise _group_not_found(group, stream) from None
        return self._to_info(raw)

    async def list_subscriptions(self, *, stream: str | None = None) -> list[SubscriptionInfo]:
        """Every group (stream None) or the groups of one stream."""
        client = self._live()
        with translated(stream or ALL):
            raws = await client.list_subscriptions_raw(stream)
        return [self._to_info(raw) for raw in raws]

    async def read_subscription(
        self, group: str, *, stream: str | None = None, buffer_size: int = 100
    ) -> EsdbPersistentSubscription:
        """Connect a consumer (`MaxSubscribersReached` when the group is full)."""
        client = self._live()
        with translated(stream or ALL):
            try:
                consumer = await client.read_persistent(group, stream, buffer_size=buffer_size)
            except NotFound:
                raise _group_not_found(group, stream) from None
        return EsdbPersistentSubscription(consumer, residual=self._filters.get((stream, group)))

    async def list_parked(
        self, group: str, *, stream: str | None = None, limit: int = 100
    ) -> list[RecordedEvent]:
        """The group's parked events, oldest first, as the original events."""
        # Reading the parked stream of a group that does not exist reads nothing; check first so
        # every adapter answers alike.
        await self.get_subscription_info(group, stream=stream)
        client = self._live()
        with translated(stream or ALL):
            try:
                links = await client.get_stream(
                    parked_stream(group, stream), resolve_links=True, limit=limit
                )
            except NotFound:
                return []
        # Each keeps its parked link: EventStoreDB writes the reason into the link's metadata.
        return [
            dataclasses.replace(
                to_recorded(link, delivery=True),
                link=None if link.link is None else to_recorded(link.link),
            )
            for link in links
        ]

    async def replay_parked(self, group: str, *, stream: str | None = None) -> None:
        """Redeliver the parked events ahead of new ones."""
        client = self._live()
        with translated(stream or ALL):
            try:
                await client.replay_parked_events(group, stream)
            except NotFound:
                raise _group_not_found(group, stream) from None

    def _to_info(self, raw: persistent_pb2.SubscriptionInfo) -> SubscriptionInfo:
        stream = None if raw.event_source == ALL else raw.event_source
        start_from, from_end = _parse_start(raw.start_from, on_all=stream is None)
        try:
            strategy = ConsumerStrategy(raw.named_consumer_strategy)
        except ValueError:
            log.warning(
                "event=esdb_unknown_strategy group=%s strategy=%r",
                raw.group_name,
                raw.named_consumer_strategy,
            )
            strategy = ConsumerStrategy.ROUND_ROBIN
        settings = SubscriptionSettings(
            start_from=start_from,
            from_end=from_end,
            filter=self._filters.get((stream, raw.group_name), EventFilter()),
            message_timeout=raw.message_timeout_milliseconds / 1000,
            max_retry_count=raw.max_retry_count,
            consumer_strategy=strategy,
            max_subscriber_count=raw.max_subscriber_count,
            checkpoint_after=raw.check_point_after_milliseconds / 1000,
            min_checkpoint_count=raw.min_check_point_count,
            max_checkpoint_count=raw.max_check_point_count,
        )
        return SubscriptionInfo(
            group=raw.group_name,
            stream=stream,
            settings=settings,
            status=raw.status,
            checkpoint=_parse_checkpoint(
                raw.last_checkpointed_event_position, on_all=stream is None
            ),
            parked=raw.parked_message_count,
            connections=len(raw.connections),
        )


def _untyped(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """esdbclient's create/update overloads split start points over keyword combinations that
    only a runtime choice picks; the implementation takes them all."""
    return method


class _CommonSettings(TypedDict):
    consumer_strategy: EsdbConsumerStrategy
    message_timeout: float
    max_retry_count: int
    min_checkpoint_count: int
    max_checkpoint_count: int
    checkpoint_after: float
    max_subscriber_count: int


def _common_settings(settings: SubscriptionSettings) -> _CommonSettings:
    return {
        "consumer_strategy": cast(EsdbConsumerStrategy, str(settings.consumer_strategy.value)),
        "message_timeout": settings.message_timeout,
        "max_retry_count": settings.max_retry_count,
        "min_checkpoint_count": settings.min_checkpoint_count,
        "max_checkpoint_count": settings.max_checkpoint_count,
        "checkpoint_after": settings.checkpoint_after,
        "max_subscriber_count": settings.max_subscriber_count,
    }


def _stream_start(settings: SubscriptionSettings) -> int | None:
    """The inclusive start version as a revision (None: the start, or the end if from_end)."""
    if settings.from_end or settings.start_from is None or settings.start_from <= 1:
        return None
    return settings.start_from - 1


def _parse_position(text: str) -> int | None:
    """`C:<commit>/P:<prepare>` -> commit; EventStoreDB's format for `$all` positions."""
    commit = text.split("/", 1)[0]
    if not commit.startswith("C:"):
        return None
    try:
        return int(commit[2:])
    except ValueError:
        return None


def _parse_start(text: str, *, on_all: bool) -> tuple[int | None, bool]:
    """A group's start_from as the port's (start_from, from_end). 0 is the start, -1 the end."""
    value = _parse_position(text) if on_all else _parse_int(text)
    if value is None or value == 0:
        return None, False
    if value < 0:
        return None, True
    return (value, False) if on_all else (value + 1, False)


def _parse_checkpoint(text: str, *, on_all: bool) -> int | None:
    """The last checkpoint as a position ($all) or a version (stream); None when there is none."""
    if not text:
        return None
    value = _parse_position(text) if on_all else _parse_int(text)
    if value is None or value < 0:
        return None
    return value if on_all else value + 1


def _parse_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
