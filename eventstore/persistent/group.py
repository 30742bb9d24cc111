"""A running persistent-subscription group: reads its target, hands events to consumers, tracks
acks, retries, timeouts, parking and the checkpoint, with EventStoreDB's semantics.

Ordering across retries is not guaranteed, as on EventStoreDB. The checkpoint is the newest
position ($all) or version (stream) up to which every event read is acked, parked or skipped.

A group reads through its `Feed`: the store's catch-up subscription for the stores of this package,
or one that resolves links and applies EventStoreDB's filters for the gRPC test server. An event
delivered through a link (`RecordedEvent.link`) counts at the link's place and is acked by the
link's id, as on EventStoreDB.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from eventstore.persistent.consumer import Consumer
from eventstore.persistent.progress import GroupProgress
from eventstore.persistent.records import GroupRecord
from eventstore.persistent.storage import GroupStorage
from eventstore.persistent.strategy import ConsumerChoice
from eventstore.port import (
    EventStoreError,
    NackAction,
    RecordedEvent,
    SubscriptionDropped,
)

logger = logging.getLogger(__name__)

_LIVE_BUFFER = 500  # EventStoreDB's default live_buffer_size: events read ahead of consumers
FEED_RETRY_INITIAL = 0.1
FEED_RETRY_MAX = 1.0  # the store readable again: delivery resumes within about a second
STOP_WAIT = 5.0
"""Seconds a stopping runtime waits for its cancelled tasks: its caller (a shutdown, a
partition handed over under a lock) must not wait for good on a task stuck past its cancel."""

Feed = Callable[[GroupRecord, int | None], AsyncIterator[RecordedEvent]]
"""Reads a group's target after a point (exclusive; None = from the start), for good: the events
of the group, in order, live once caught up."""


@dataclass(frozen=True, slots=True)
class _Message:
    event: RecordedEvent
    retry_count: int
    tracked: bool  # counts for the checkpoint (False: a replayed parked event, already behind it)


@dataclass(slots=True)
class _InFlight:
    message: _Message
    consumer: Consumer
    deadline: float


def ack_key(event: RecordedEvent) -> uuid.UUID:
    """The id a delivery is acked by: its link's when it came through one."""
    link = event.link
    return event.id if link is None else link.id


def _delivery(event: RecordedEvent, retry_count: int) -> RecordedEvent:
    # Spelled out: `dataclasses.replace` costs twice as much, once per delivered event.
    return RecordedEvent(
        id=event.id,
        stream=event.stream,
        type=event.type,
        version=event.version,
        position=event.position,
        data=event.data,
        metadata=event.metadata,
        recorded_at=event.recorded_at,
        content_type=event.content_type,
        retry_count=retry_count,
        ack_id=ack_key(event),
        link=event.link,
    )


class GroupRuntime:
    """The live state of one group while the store is open: what waits for a consumer (retries,
    new events), what is in flight, and the tasks that read the target and time deliveries out.
    Which consumer gets an event is its `ConsumerChoice`'s call; the checkpoint and parking are
    its `GroupProgress`'s."""

    def __init__(self, record: GroupRecord, feed: Feed, tables: GroupStorage) -> None:
        self.record = record
        self._source = feed
        self._settings = record.settings
        self.consumers: list[Consumer] = []
        self._choice = ConsumerChoice(self.consumers)
        self._retry: OrderedDict[uuid.UUID, _Message] = OrderedDict()
        self._live: deque[_Message] = deque()
        self._in_flight: dict[uuid.UUID, _InFlight] = {}
        self._space = asyncio.Event()
        self._fed: int | None = None  # the key of the last event read into the group
        self._loop = asyncio.get_running_loop()
        self._progress = GroupProgress(record, tables, self._loop)
        self._tasks: list[asyncio.Task[None]] = []
        self.total_items = 0  # deliveries made, retries included

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, record: GroupRecord | None = None) -> None:
        """Start reading the target and the timer; from `record`'s checkpoint when given (a
        store shared by several processes re-reads it when this one takes the group over)."""
        if record is not None:
            self.record = record
            self._settings = record.settings
            self._progress.resume(record)
        name = f"{self.record.stream or '$all'}::{self.record.group}"
        self._tasks = [
            asyncio.create_task(self._feed_loop(), name=f"persistent feed {name}"),
            asyncio.create_task(self._timer_loop(), name=f"persistent timer {name}"),
        ]

    async def stop(self, error: BaseException | None) -> None:
        """Stop: consumers end with `error`, the checkpoint is saved, replayed parked events not
        yet handled are parked again so that nothing parked is lost. Bounded: a task that has
        not ended `STOP_WAIT` seconds after its cancellation is left behind (and logged), and a
        caller cancelled meanwhile is cancelled still (after the state is saved), never held."""
        tasks, self._tasks = self._tasks, []
        try:
            await _cancelled(tasks, f"{self.record.stream or '$all'}::{self.record.group}")
        finally:
            self._finish_stop(error)

    def _finish_stop(self, error: BaseException | None) -> None:
        unhandled = [m.event for m in self._retry.values() if not m.tracked]
        unhandled += [f.message.event for f in self._in_flight.values() if not f.message.tracked]
        if unhandled:
            self._progress.park(unhandled)
        self._retry.clear()
        self._in_flight.clear()
        self._progress.save()
        for consumer in self.consumers:
            consumer.end(error)
        self.consumers.clear()

    # -- consumers -----------------------------------------------------------------------------

    def connect(self, buffer_size: int) -> Consumer:
        """A new consumer of this group."""
        consumer = Consumer(self, buffer_size)
        self.consumers.append(consumer)
        self._dispatch()
        return consumer

    def disconnect(self, consumer: Consumer) -> None:
        """A consumer left: its in-flight events are retried elsewhere."""
        if consumer not in self.consumers:
            return
        self.consumers.remove(consumer)
        self._choice.forget(consumer)
        for ack_id in [k for k, f in self._in_flight.items() if f.consumer is consumer]:
            self._retry_or_park(self._in_flight.pop(ack_id).message)
        consumer.in_flight = 0
        self._dispatch()

    def ack(self, consumer: Consumer, ack_id: uuid.UUID) -> None:
        """The event is handled, wherever it is now (in flight or waiting for a retry)."""
        message = self._take(ack_id)
        if message is not None:
            self._finish(message)
            self._dispatch()

    def nack(self, consumer: Consumer, ack_id: uuid.UUID, action: NackAction) -> None:
        """Retry (retry_count + 1, parked past max_retry_count), park, or drop (skip, stop)."""
        message = self._take(ack_id)
        if message is None:
            return
        match action:
            case NackAction.RETRY:
                self._retry_or_park(message)
            case NackAction.PARK:
                self._park(message)
            case NackAction.SKIP | NackAction.STOP:
                self._finish(message)
        self._dispatch()

    def replay_parked(self, events: list[RecordedEvent]) -> None:
        """Deliver these (just taken off the parked list) ahead of new events."""
        # An event re-read from the log after a restart may be parked and pending at once: the
        # pending copy is delivered anyway, and only its ack moves the checkpoint.
        replayed = OrderedDict(
            (ack_key(e), _Message(e, 0, tracked=False))
            for e in events
            if ack_key(e) not in self._retry and ack_key(e) not in self._in_flight
        )
        replayed.update((k, m) for k, m in self._retry.items() if k not in replayed)
        self._retry = replayed
        self._dispatch()

    @property
    def checkpoint(self) -> int | None:
        """The last checkpoint handed to the storage."""
        return self._progress.saved

    @property
    def last_known(self) -> int | None:
        """The place of the last event read into the group (None before the first)."""
        return self._fed

    @property
    def in_flight(self) -> int:
        """Deliveries not yet acked, nacked or timed out."""
        return len(self._in_flight)

    @property
    def buffered(self) -> tuple[int, int, int]:
        """What waits for a consumer: (replayed parked events, new events, retries)."""
        replayed = sum(1 for message in self._retry.values() if not message.tracked)
        return replayed, len(self._live), len(self._retry) - replayed

    # -- internals -----------------------------------------------------------------------------

    def _key(self, event: RecordedEvent) -> int:
        placed = event if event.link is None else event.link
        return placed.position if self.record.stream is None else placed.version

    def _take(self, ack_id: uuid.UUID) -> _Message | None:
        flight = self._in_flight.pop(ack_id, None)
        if flight is not None:
            flight.consumer.in_flight -= 1
            return flight.message
        return self._retry.pop(ack_id, None)

    def _retry_or_park(self, message: _Message) -> None:
        if message.retry_count >= self._settings.max_retry_count:
            self._park(message)
        else:
            self._retry[ack_key(message.event)] = dataclasses.replace(
                message, retry_count=message.retry_count + 1
            )

    def _park(self, message: _Message) -> None:
        self._progress.park([message.event])
        logger.info(
            "event=persistent_parked group=%s stream=%s version=%s retries=%d",
            self.record.group,
            message.event.stream,
            message.event.version,
            message.retry_count,
        )
        self._finish(message)

    def _finish(self, message: _Message) -> None:
        if message.tracked:
            self._progress.settle(self._key(message.event))

    def _choose(self, message: _Message) -> Consumer | None:
        return self._choice.choose(message.event, self._settings.consumer_strategy)

    def _dispatch(self) -> None:
        """Hand out retries first, then new events, while any consumer has room. A message its
        strategy cannot place now (a full pinned consumer) waits while later ones go out, as on
        EventStoreDB."""
        for ack_id, message in list(self._retry.items()) if self._retry else ():
            if not self._choice.has_capacity():
                break
            consumer = self._choose(message)
            if consumer is not None:
                del self._retry[ack_id]
                self._deliver(consumer, message)
        waiting: deque[_Message] = deque()
        while self._live and self._choice.has_capacity():
            message = self._live.popleft()
            consumer = self._choose(message)
            if consumer is None:
                waiting.append(message)
            else:
                self._deliver(consumer, message)
        waiting.extend(self._live)
        self._live = waiting
        if len(self._live) < _LIVE_BUFFER:
            self._space.set()

    def _deliver(self, consumer: Consumer, message: _Message) -> None:
        timeout = self._settings.message_timeout
        deadline = self._loop.time() + timeout if timeout > 0 else math.inf
        event = message.event
        key = ack_key(event)
        previous = self._in_flight.pop(key, None)
        if previous is not None:
            # The same event twice (a replayed parked copy and the log's): one delivery stands
            # for both, and it counts for the checkpoint if either did.
            previous.consumer.in_flight -= 1
            if previous.message.tracked and not message.tracked:
                message = dataclasses.replace(message, tracked=True)
        self._in_flight[key] = _InFlight(message, consumer, deadline)
        consumer.in_flight += 1
        consumer.total_items += 1
        self.total_items += 1
        consumer.push(_delivery(event, message.retry_count))

    def _feed(self) -> AsyncIterator[RecordedEvent]:
        after = self._fed if self._fed is not None else self.record.checkpoint
        if after is None:
            after = self.record.start_after
        return self._source(self.record, after)

    async def _feed_loop(self) -> None:
        """Read the target into the group for good: a read that fails (the file, or a bug)
        drops the consumers (they reconnect) and reading resumes after the last event taken in,
        after a pause, so the group never stops delivering while the store is open."""
        delay = FEED_RETRY_INITIAL
        while True:
            feed = self._feed()
            try:
                async for event in feed:
                    while len(self._live) >= _LIVE_BUFFER:
                        self._space.clear()
                        await self._space.wait()
                    self._progress.read(self._key(event))
                    self._live.append(_Message(event, 0, tracked=True))
                    self._fed = self._key(event)
                    delay = FEED_RETRY_INITIAL
                    self._dispatch()
            except EventStoreError as error:
                if delay == FEED_RETRY_INITIAL:
                    logger.warning(
                        "event=persistent_feed_failed group=%s error=%s", self.record.group, error
                    )
                self._drop_consumers(error)
            except Exception as error:
                # A bug, not a store condition: say so loudly, and do not leave consumers waiting.
                logger.exception("event=persistent_feed_crashed group=%s", self.record.group)
                self._drop_consumers(error)
            finally:
                aclose = getattr(feed, "aclose", None)
                if aclose is not None:
                    await aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, FEED_RETRY_MAX)

    def _drop_consumers(self, error: Exception) -> None:
        dropped = SubscriptionDropped(f"group {self.record.group!r}: {error}")
        for consumer in list(self.consumers):
            consumer.end(dropped)
            self.disconnect(consumer)  # its in-flight events wait for the next consumer
        self._choice.clear_pins()

    async def _timer_loop(self) -> None:
        timeout = self._settings.message_timeout
        # EventStoreDB checks once a second; a finer tick keeps small timeouts close to exact.
        tick = min(0.2, max(0.02, timeout / 5)) if timeout > 0 else 0.2
        tick = min(tick, max(0.02, self._settings.checkpoint_after / 2))
        while True:
            await asyncio.sleep(tick)
            now = self._loop.time()
            expired = [k for k, f in self._in_flight.items() if f.deadline <= now]
            for ack_id in expired:
                flight = self._in_flight.pop(ack_id)
                flight.consumer.in_flight -= 1
                self._retry_or_park(flight.message)
            if expired:
                self._dispatch()
            self._progress.save_if_due(now)


async def _cancelled(tasks: list[asyncio.Task[None]], name: str) -> None:
    """Cancel `tasks` and wait at most `STOP_WAIT` for them to end. `asyncio.wait` rather than
    awaiting each task: awaiting a cancelled task and suppressing its `CancelledError` would
    also swallow a cancellation of the caller (a store closing cancels a task that is stopping
    a runtime), which then never ends."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=STOP_WAIT)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            logger.error("event=persistent_task_failed group=%s", name, exc_info=task.exception())
    if pending:
        logger.warning("event=persistent_stop_overdue group=%s tasks=%d", name, len(pending))
