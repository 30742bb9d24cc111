"""One persistent-subscription group at run time: reading its source, dispatching to consumers,
acks and nacks, message timeouts, retries, parking, replay and checkpoints.

Points are the port's numbers: versions for stream groups, store positions for `$all` groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from eventstore.port import ANY, NewEvent, RecordedEvent, StreamDeleted, WrongExpectedVersion

from .backend import EVERYTHING, LINK_TYPE, Backend, link_to
from .convert import first_position_at_or_after
from .filters import hidden_from_all
from .group_config import GroupSettings, checkpoint_text

logger = logging.getLogger(__name__)


@dataclass(slots=True, kw_only=True)
class Delivery:
    """A message of the group: an event (through a link when `link` is set) and its retries."""

    event: RecordedEvent
    link: RecordedEvent | None = None
    retry_count: int = 0
    seq: int | None = None  # source order, for checkpoints; None for replayed parked events
    point: int = 0
    deadline: float = 0.0

    @property
    def ack_id(self) -> uuid.UUID:
        """The id clients acknowledge: the link's when there is one."""
        return self.link.id if self.link is not None else self.event.id


@dataclass(frozen=True, slots=True, kw_only=True)
class Drop:
    """Ends a consumer's call with a status."""

    code: str
    message: str


@dataclass(slots=True, kw_only=True)
class Consumer:
    """One connected client of the group."""

    buffer_size: int
    connection_name: str
    peer: str
    outbox: asyncio.Queue[Delivery | Drop] = field(default_factory=asyncio.Queue)
    in_flight: dict[uuid.UUID, Delivery] = field(default_factory=dict)
    total_items: int = 0

    @property
    def free(self) -> int:
        """Slots left in its buffer."""
        return self.buffer_size - len(self.in_flight)


class MaxConsumersReached(Exception):
    """The group is at `max_subscriber_count`."""


class Group:
    """A running group."""

    def __init__(self, backend: Backend, settings: GroupSettings, *, timeout_tick: float) -> None:
        self.backend = backend
        self.settings = settings
        self._tick = timeout_tick
        self.consumers: list[Consumer] = []
        self._retry: deque[Delivery] = deque()
        self._replay: deque[Delivery] = deque()
        self._incoming: asyncio.Queue[Delivery] = asyncio.Queue(
            maxsize=max(1, settings.live_buffer_size)
        )
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._round_robin = 0
        self._next_seq = 0
        self._low_seq = 0
        self._finished: dict[int, int] = {}
        self._checkpointable: int | None = None
        self.checkpoint: int | None = None
        self._since_checkpoint = 0
        self._last_checkpoint_at = time.monotonic()
        self.last_known: int | None = None
        self.total_items = 0

    @property
    def subscription_id(self) -> str:
        """`<stream or $all>::<group>`."""
        return f"{self.settings.source}::{self.settings.group}"

    @property
    def parked_stream(self) -> str:
        return f"$persistentsubscription-{self.subscription_id}-parked"

    @property
    def checkpoint_stream(self) -> str:
        return f"$persistentsubscription-{self.subscription_id}-checkpoint"

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Loads the checkpoint and starts reading and dispatching."""
        last = await self.backend.last_event(self.checkpoint_stream)
        if last is not None:
            self.checkpoint = self._point_of_checkpoint(last.data)
        after = self.checkpoint if self.checkpoint is not None else await self._start_after()
        self._tasks = [
            asyncio.create_task(self._read(after), name=f"read {self.subscription_id}"),
            asyncio.create_task(self._dispatch(), name=f"dispatch {self.subscription_id}"),
        ]

    async def stop(self, drop: Drop | None = None) -> None:
        """Stops the tasks; connected consumers get `drop` (or just end)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for consumer in self.consumers:
            consumer.outbox.put_nowait(drop or Drop(code="CANCELLED", message="Group stopped."))
        self.consumers = []

    def _point_of_checkpoint(self, data: bytes) -> int | None:
        text = json.loads(data)
        if self.settings.stream is not None:
            return int(text) + 1
        commit = int(str(text).split("/")[0].split(":")[1])
        return first_position_at_or_after(commit)

    async def _start_after(self) -> int | None:
        """The exclusive lower bound of the first read: start points are inclusive."""
        start = self.settings.start_from
        if start is None:
            return None
        if start == -1:
            if self.settings.stream is None:
                return await self.backend.head_position()
            try:
                last = await self.backend.last_event(self.settings.stream)
            except StreamDeleted:
                return None
            return None if last is None else last.version
        if self.settings.stream is not None:
            return start  # revision r is version r + 1: after version r
        return first_position_at_or_after(start) - 1

    # -- reading the source --------------------------------------------------------------

    def _source(self, after: int | None) -> AsyncIterator[RecordedEvent]:
        store = self.backend.store
        if self.settings.stream is not None:
            return store.subscribe_stream(self.settings.stream, after_version=after or None)
        return store.subscribe_all(after_position=after or None, filter=EVERYTHING)

    async def _read(self, after: int | None) -> None:
        selected = self.settings.compiled_filter()
        source = self._source(after)
        try:
            async with contextlib.aclosing(source):  # type: ignore[type-var]
                async for event in source:
                    point = event.version if self.settings.stream is not None else event.position
                    if self.settings.stream is None and (
                        hidden_from_all(event)
                        or (selected is not None and not selected.matches(event))
                    ):
                        continue
                    link = None
                    if self.settings.resolve_links and event.type == LINK_TYPE:
                        target = await self.backend.resolve(event)
                        if target is not None:
                            event, link = target, event
                    delivery = Delivery(event=event, link=link, seq=self._next_seq, point=point)
                    self._next_seq += 1
                    self.last_known = point
                    await self._incoming.put(delivery)
                    self._wake.set()
        except StreamDeleted:
            logger.info("event=group_source_tombstoned group=%s", self.subscription_id)

    # -- dispatching ---------------------------------------------------------------------

    async def _dispatch(self) -> None:
        next_tick = time.monotonic() + self._tick
        while True:
            timeout = max(0.0, next_tick - time.monotonic())
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the wait completes, and this loop would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self._tick
                await self._expire()
                await self._maybe_checkpoint(tick=True)
            self._push()

    def _next(self) -> Delivery | None:
        if self._retry:
            return self._retry.popleft()
        if self._replay:
            return self._replay.popleft()
        with contextlib.suppress(asyncio.QueueEmpty):
            return self._incoming.get_nowait()
        return None

    def _push_back(self, delivery: Delivery) -> None:
        if delivery.seq is None:
            self._replay.appendleft(delivery)
        else:
            self._retry.appendleft(delivery)

    def _push(self) -> None:
        while any(consumer.free > 0 for consumer in self.consumers):
            delivery = self._next()
            if delivery is None:
                return
            consumer = self._choose(delivery)
            if consumer is None:
                self._push_back(delivery)
                return
            timeout = self.settings.message_timeout_ms / 1000
            delivery.deadline = time.monotonic() + timeout if timeout > 0 else float("inf")
            consumer.in_flight[delivery.ack_id] = delivery
            consumer.total_items += 1
            self.total_items += 1
            consumer.outbox.put_nowait(delivery)

    def _choose(self, delivery: Delivery) -> Consumer | None:
        strategy = self.settings.consumer_strategy
        if strategy in ("Pinned", "PinnedByCorrelation"):
            key = delivery.event.stream
            if strategy == "PinnedByCorrelation":
                with contextlib.suppress(ValueError, AttributeError):
                    key = str(json.loads(delivery.event.metadata).get("$correlationId", key))
            consumer = self.consumers[(zlib.crc32(key.encode()) % 1024) % len(self.consumers)]
            return consumer if consumer.free > 0 else None
        if strategy == "DispatchToSingle":
            return next((c for c in self.consumers if c.free > 0), None)
        for offset in range(len(self.consumers)):
            consumer = self.consumers[(self._round_robin + offset) % len(self.consumers)]
            if consumer.free > 0:
                self._round_robin = (self._round_robin + offset + 1) % len(self.consumers)
                return consumer
        return None

    # -- consumers -----------------------------------------------------------------------

    def connect(self, buffer_size: int, connection_name: str, peer: str) -> Consumer:
        """Adds a consumer; raises `MaxConsumersReached`."""
        limit = self.settings.max_subscriber_count
        if limit and len(self.consumers) >= limit:
            raise MaxConsumersReached
        consumer = Consumer(
            buffer_size=max(1, buffer_size), connection_name=connection_name, peer=peer
        )
        self.consumers.append(consumer)
        self._wake.set()
        return consumer

    async def disconnect(self, consumer: Consumer) -> None:
        """Removes a consumer; what it had in flight is retried."""
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        lost = sorted(consumer.in_flight.values(), key=lambda d: (d.seq is None, d.seq or 0))
        consumer.in_flight.clear()
        for delivery in reversed(lost):
            await self._retry_or_park(delivery, front=True)
        self._wake.set()

    async def ack(self, consumer: Consumer, ids: list[uuid.UUID]) -> None:
        """Acknowledged: finished."""
        for ack_id in ids:
            delivery = consumer.in_flight.pop(ack_id, None)
            if delivery is not None:
                await self._finish(delivery)
        self._wake.set()

    async def nack(self, consumer: Consumer, ids: list[uuid.UUID], action: str) -> None:
        """Not acknowledged: park, retry (also 'unknown'), or skip/stop (finished)."""
        for ack_id in ids:
            delivery = consumer.in_flight.pop(ack_id, None)
            if delivery is None:
                continue
            if action == "park":
                await self._park(delivery)
            elif action in ("retry", "unknown"):
                await self._retry_or_park(delivery)
            else:
                await self._finish(delivery)
        self._wake.set()

    async def _expire(self) -> None:
        now = time.monotonic()
        for consumer in self.consumers:
            expired = [d for d in consumer.in_flight.values() if d.deadline <= now]
            for delivery in expired:
                del consumer.in_flight[delivery.ack_id]
                await self._retry_or_park(delivery)

    async def _retry_or_park(self, delivery: Delivery, *, front: bool = False) -> None:
        if delivery.retry_count >= self.settings.max_retry_count:
            await self._park(delivery)
            return
        delivery.retry_count += 1
        if front:
            self._retry.appendleft(delivery)
        else:
            self._retry.append(delivery)

    async def _park(self, delivery: Delivery) -> None:
        metadata = json.dumps({"$parkedReason": "parked"}).encode()
        await self.backend.store.append(
            self.parked_stream, [link_to(delivery.event, metadata=metadata)], ANY
        )
        await self._finish(delivery)

    async def _finish(self, delivery: Delivery) -> None:
        if delivery.seq is None:
            return
        self._finished[delivery.seq] = delivery.point
        while self._low_seq in self._finished:
            self._checkpointable = self._finished.pop(self._low_seq)
            self._low_seq += 1
            self._since_checkpoint += 1
        await self._maybe_checkpoint(tick=False)

    async def _maybe_checkpoint(self, *, tick: bool) -> None:
        s = self.settings
        if self._checkpointable is None or self._checkpointable == self.checkpoint:
            return
        elapsed = time.monotonic() - self._last_checkpoint_at >= s.checkpoint_after_ms / 1000
        due = self._since_checkpoint >= s.max_checkpoint_count or (
            elapsed and self._since_checkpoint >= s.min_checkpoint_count
        )
        if not due and not (tick and elapsed and self._since_checkpoint > 0 and not self.in_flight):
            return
        point = self._checkpointable
        text = json.dumps(checkpoint_text(s, point)).encode()
        event = NewEvent(id=uuid.uuid4(), type="$SubscriptionCheckpoint", data=text)
        await self.backend.store.append(self.checkpoint_stream, [event], ANY)
        self.checkpoint = point
        self._since_checkpoint = 0
        self._last_checkpoint_at = time.monotonic()

    # -- parked messages -----------------------------------------------------------------

    async def parked_links(self) -> list[RecordedEvent]:
        """The parked links not yet replayed."""
        try:
            return [
                e async for e in self.backend.iter_stream(self.parked_stream, after_version=None)
            ]
        except StreamDeleted:
            return []

    async def replay_parked(self, stop_at: int | None) -> None:
        """Queues parked events ahead of new ones (as links), then truncates the parked stream."""
        links = await self.parked_links()
        if stop_at is not None:
            links = links[:stop_at]
        for link in links:
            target = await self.backend.resolve(link)
            if target is not None:
                self._replay.append(Delivery(event=target, link=link))
        if links:
            metadata = await self.backend.store.get_stream_metadata(self.parked_stream)
            metadata["$tb"] = links[-1].version  # a revision: hides versions <= it
            try:
                await self.backend.store.set_stream_metadata(self.parked_stream, metadata)
            except WrongExpectedVersion:  # pragma: no cover - ANY never conflicts
                logger.warning("event=parked_truncate_failed stream=%s", self.parked_stream)
        self._wake.set()

    # -- statistics ----------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Messages delivered and not yet acknowledged."""
        return sum(len(consumer.in_flight) for consumer in self.consumers)

    @property
    def buffered(self) -> tuple[int, int, int]:
        """(read buffer, live buffer, retry buffer) counts."""
        return len(self._replay), self._incoming.qsize(), len(self._retry)
