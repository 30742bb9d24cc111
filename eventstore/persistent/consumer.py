"""One consumer's connection to a persistent-subscription group."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from typing import Protocol, Self

from eventstore.port import NackAction, RecordedEvent


class ConsumerOwner(Protocol):
    """What a consumer reports to its group (`GroupRuntime`)."""

    def ack(self, consumer: Consumer, ack_id: uuid.UUID) -> None: ...

    def nack(self, consumer: Consumer, ack_id: uuid.UUID, action: NackAction) -> None: ...

    def disconnect(self, consumer: Consumer) -> None: ...


class Consumer:
    """Implements the `PersistentSubscription` Protocol: iterate for deliveries, ack or nack each.

    The group pushes deliveries into a local queue; `buffer_size` bounds how many of them the group
    keeps in flight (delivered, not yet acked) for this consumer.
    """

    def __init__(self, runtime: ConsumerOwner, buffer_size: int) -> None:
        self._runtime = runtime
        self.buffer_size = max(1, buffer_size)
        self.in_flight = 0
        self.total_items = 0  # deliveries made to it, retries included
        self._queue: deque[RecordedEvent] = deque()
        self._ready = asyncio.Event()
        self._ended = False
        self._error: BaseException | None = None

    @property
    def capacity(self) -> int:
        """How many more events the group may hand this consumer now."""
        return 0 if self._ended else self.buffer_size - self.in_flight

    def push(self, event: RecordedEvent) -> None:
        """Called by the group: one delivery."""
        self._queue.append(event)
        self._ready.set()

    def end(self, error: BaseException | None) -> None:
        """Called by the group: no more deliveries; iteration raises `error` once the queue is
        drained (ends quietly when None)."""
        if self._ended:
            return
        self._ended = True
        self._error = error
        self._ready.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> RecordedEvent:
        while not self._queue:
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    async def ack(self, event: RecordedEvent) -> None:
        """The event was handled: it will not be delivered again."""
        self._runtime.ack(self, _ack_id(event))

    async def nack(self, event: RecordedEvent, action: NackAction) -> None:
        """The event was not handled: retry, park, skip or (like EventStoreDB) just drop it."""
        self._runtime.nack(self, _ack_id(event), action)

    def ack_ids(self, ack_ids: list[uuid.UUID]) -> None:
        """Acks by id, as a wire protocol carries them (see `RecordedEvent.ack_id`)."""
        for ack_id in ack_ids:
            self._runtime.ack(self, ack_id)

    def nack_ids(self, ack_ids: list[uuid.UUID], action: NackAction) -> None:
        """Nacks by id, as a wire protocol carries them."""
        for ack_id in ack_ids:
            self._runtime.nack(self, ack_id, action)

    async def stop(self) -> None:
        """Disconnect: events still in flight go to the group's other consumers."""
        if not self._ended:
            self._runtime.disconnect(self)
            self.end(None)
        # What was pushed but never read will be redelivered elsewhere, not read here.
        self._queue.clear()


def _ack_id(event: RecordedEvent) -> uuid.UUID:
    return event.ack_id if event.ack_id is not None else event.id
