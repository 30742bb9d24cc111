"""The skeleton every worker of a persistent-subscription group shares (the projector's and the
Kafka relay's): its id and state, the group made sure of, the subscription read in batches until
`stop`, and the exponential back-off between attempts.

The worker drives: its own `run` loop calls these pieces and handles each batch itself; nothing
here calls back into it, so an event's way reads top-down in the worker's module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self

from eventstore.consuming import ensure_group, pump
from eventstore.port import (
    PersistentSubscription,
    RecordedEvent,
    StoreWithGroups,
    SubscriptionSettings,
)

logger = logging.getLogger(__name__)


class RunnerState(StrEnum):
    """Where a group worker is; a projection reports the most severe over its workers."""

    STOPPED = "stopped"
    RUNNING = "running"
    CATCHING_UP = "catching-up"
    ERROR = "error"


class ConsumingSettings(Protocol):
    """How a worker reads its group (each worker's settings dataclass has these fields)."""

    @property
    def group(self) -> str:
        """The persistent-subscription group's name."""

    @property
    def batch_size(self) -> int:
        """The most events handled together."""

    @property
    def buffer_size(self) -> int:
        """The most events the store sends ahead of the acks."""

    @property
    def backoff_initial(self) -> float:
        """Seconds waited after the first failure of an outage."""

    @property
    def backoff_max(self) -> float:
        """The longest wait between two attempts: consuming resumes within about this long of
        the store (and the worker's other dependency) coming back."""


class Backoff:
    """The wait between a worker's attempts: `initial` after a success, twice as long after each
    failure that follows, at most `maximum`."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.delay = initial

    @property
    def first_failure(self) -> bool:
        """No wait since the last success: a failure now begins an outage (said once, louder)."""
        return self.delay == self.initial

    def reset(self) -> None:
        """The dependency answered: the next outage starts from the shortest wait again."""
        self.delay = self.initial

    async def wait(self, stop: asyncio.Event) -> None:
        """Wait the current delay (less when `stop` is set meanwhile), then double it."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.delay):
                await stop.wait()
        self.delay = min(self.delay * 2, self.maximum)


_STOP = object()


@dataclass(frozen=True, slots=True)
class Batch:
    """Events delivered in a row (in delivery order), and how the delivery went on after them."""

    events: list[RecordedEvent]
    stopped: bool = False
    """`stop` was set after these: handle them, then end."""
    error: BaseException | None = None
    """The subscription ended with this after them: handle them, then raise it."""


class Batches:
    """A subscription's deliveries, gathered into batches of at most `size` (no waiting for a
    batch to fill: whatever has arrived goes), until `stop` is set or the subscription ends.

    async with Batches(subscription, stop, size=500, name="...") as batches:
        batch = await batches.next()
    """

    def __init__(
        self, subscription: PersistentSubscription, stop: asyncio.Event, *, size: int, name: str
    ) -> None:
        self.subscription = subscription
        self._stop = stop
        self._size = size
        self._name = name
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> Self:
        queue = self._queue
        reader = asyncio.create_task(pump(self.subscription, queue), name=self._name)
        stopper = asyncio.create_task(self._stop.wait())
        # The stop arrives in the queue behind what was delivered before it, so that is handled.
        stopper.add_done_callback(lambda _: queue.put_nowait(_STOP))
        self._tasks = [stopper, reader]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def empty(self) -> bool:
        """Nothing has arrived that `next` would return at once."""
        return self._queue.empty()

    async def next(self) -> Batch:
        """The next batch, waiting for its first event as long as it takes."""
        return self._gather(await self._queue.get())

    async def next_within(self, seconds: float) -> Batch | None:
        """The next batch, waiting for its first event at most `seconds`; None when none arrived
        by then."""
        try:
            async with asyncio.timeout(seconds):
                item = await self._queue.get()
        except TimeoutError:
            return None
        return self._gather(item)

    def _gather(self, item: object) -> Batch:
        events: list[RecordedEvent] = []
        while True:
            if item is _STOP:
                return Batch(events, stopped=True)
            if isinstance(item, BaseException):
                return Batch(events, error=item)
            assert isinstance(item, RecordedEvent)
            events.append(item)
            if len(events) >= self._size or self._queue.empty():
                return Batch(events)
            item = self._queue.get_nowait()


class GroupWorker:
    """What a worker of one persistent-subscription group holds and does like any other: an id,
    a state and the last error (for status and health), its group made sure of and read in
    batches, and the back-off between attempts."""

    def __init__(
        self,
        kind: str,
        store: StoreWithGroups,
        consuming: ConsumingSettings,
        group_settings: SubscriptionSettings,
        worker_id: str | None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.state = RunnerState.STOPPED
        self.last_error: str | None = None
        self.backoff = Backoff(consuming.backoff_initial, consuming.backoff_max)
        self._kind = kind
        self._consuming = consuming
        self._group_settings = group_settings

    def _record_failure(self, error: BaseException) -> None:
        self.state = RunnerState.ERROR
        self.last_error = f"{type(error).__name__}: {error}"

    async def _ensure_group(self) -> None:
        group = self._consuming.group
        if await ensure_group(self.store.groups, group, self._group_settings):
            logger.info("event=%s_group_created group=%s", self._kind, group)

    @contextlib.asynccontextmanager
    async def _subscribed(self, stop: asyncio.Event) -> AsyncIterator[Batches]:
        """The group's subscription in batches for the block, stopped when it ends; reading it
        resets the back-off (the store answers again)."""
        consuming = self._consuming
        subscription = await self.store.groups.read_subscription(
            consuming.group, buffer_size=consuming.buffer_size
        )
        self.backoff.reset()
        try:
            name = f"{self._kind}-{self.worker_id}-reader"
            size = consuming.batch_size
            async with Batches(subscription, stop, size=size, name=name) as batches:
                yield batches
        finally:
            await subscription.stop()
