"""The relay worker: consumes the "kafka-relay" persistent subscription and publishes each order
event to the topic, acking it in the store only once the broker acknowledged it.

At least once: an event is acked after Kafka has it, so a crash between the two republishes it
(consumers deduplicate by event id). In order per order id: the group pins each stream to one
worker, which sends a batch in delivery order and the producer keeps one order's partition in
order. Any number of workers (in one process or many) share the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka.errors import KafkaError

from application.codec import DECODE_ERRORS, ORDER_EVENTS
from eventstore.group_worker import Batches, GroupWorker, RunnerState
from eventstore.outage_log import OUTAGES
from eventstore.port import (
    ConsumerStrategy,
    EventStoreError,
    NackAction,
    PersistentSubscription,
    RecordedEvent,
    StoreWithGroups,
    SubscriptionSettings,
)
from metrics.instruments import RELAY_LAG_SECONDS, RELAY_PUBLISHED
from relay.message import KafkaMessage, to_message
from relay.publisher import Outcome, Publisher

logger = logging.getLogger(__name__)

GROUP = "kafka-relay"

GROUP_SETTINGS = SubscriptionSettings(
    filter=ORDER_EVENTS,
    # one order's events go to one worker, so its records are sent in order
    consumer_strategy=ConsumerStrategy.PINNED,
    # a broker outage retries for a long time before an event is parked
    max_retry_count=1000,
    message_timeout=60.0,
    # A crash republishes what was acked after the last checkpoint: checkpoint often, so that
    # is at most about half a second's worth.
    checkpoint_after=0.5,
    min_checkpoint_count=1,
    max_checkpoint_count=500,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RelaySettings:
    """How a relay worker consumes its group."""

    group: str = GROUP
    batch_size: int = 1000
    # Batches sent before the oldest one's acknowledgements are awaited: the broker's round
    # trips overlap instead of adding up. Acks still go to the store in delivery order.
    in_flight: int = 4
    buffer_size: int = 5000
    # Seconds a stopping worker waits for the broker to acknowledge what it has sent.
    stop_grace: float = 5.0
    backoff_initial: float = 0.1
    backoff_max: float = 2.0


class PublishFailed(RuntimeError):
    """The broker did not acknowledge some of a batch (they are nacked for a retry)."""


PublisherOpener = Callable[[], Awaitable[Publisher]]


class KafkaRelay(GroupWorker):
    """One worker of the relay. `await run(stop)` until `stop` is set."""

    def __init__(
        self,
        store: StoreWithGroups,
        open_publisher: PublisherOpener,
        *,
        settings: RelaySettings | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings or RelaySettings()
        super().__init__("relay", store, self.settings, GROUP_SETTINGS, worker_id)
        self.open_publisher = open_publisher
        self.published = 0
        self.parked = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set, reconnecting after errors with exponential backoff."""
        publisher: Publisher | None = None
        while not stop.is_set():
            try:
                if publisher is None:
                    publisher = await self.open_publisher()
                await self._ensure_group()
                async with self._subscribed(stop) as batches:
                    self.state = RunnerState.RUNNING
                    OUTAGES.recovered("kafka")
                    OUTAGES.recovered("eventStore")
                    logger.info("event=relay_running worker=%s", self.worker_id)
                    await self._consume(batches, publisher)
            except (EventStoreError, KafkaError, PublishFailed, OSError) as error:
                self._failed(error)
                if not isinstance(error, EventStoreError) and publisher is not None:
                    # a fresh producer after a broker error: its metadata may be stale
                    await self._close_quietly(publisher)
                    publisher = None
            except Exception as error:
                # A bug: loud, with its traceback, but the worker goes on after the backoff.
                self._record_failure(error)
                logger.exception("event=relay_crashed worker=%s", self.worker_id)
            else:
                continue
            await self.backoff.wait(stop)
        if publisher is not None:
            await self._close_quietly(publisher)
        self.state = RunnerState.STOPPED
        logger.info("event=relay_stopped worker=%s published=%d", self.worker_id, self.published)

    def _failed(self, error: BaseException) -> None:
        self._record_failure(error)
        # One line per outage of its part (eventstore.outage_log), then one when it is over.
        OUTAGES.failed("eventStore" if isinstance(error, EventStoreError) else "kafka", error)
        logger.debug("event=relay_retry worker=%s error=%r", self.worker_id, error)

    async def _close_quietly(self, publisher: Publisher) -> None:
        try:
            await publisher.close()
        except (KafkaError, OSError) as error:
            logger.debug("event=relay_close_failed worker=%s error=%r", self.worker_id, error)

    async def _consume(self, batches: Batches, publisher: Publisher) -> None:
        subscription = batches.subscription
        sent: deque[tuple[list[RecordedEvent], Outcome]] = deque()
        try:
            while True:
                if sent and batches.empty():
                    # nothing new to send: settle what the broker has answered meanwhile
                    await self._settle(subscription, sent)
                    continue
                batch = await batches.next()
                await self._send(subscription, publisher, batch.events, sent)
                if batch.stopped:
                    # what the broker answers within the grace is acked; the rest (a broker
                    # that is down) is delivered again to the next relay
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.settings.stop_grace):
                            while sent:
                                await self._settle(subscription, sent)
                    return
                if batch.error is not None:
                    while sent:
                        await self._settle(subscription, sent)
                    raise batch.error
                while len(sent) > self.settings.in_flight:
                    await self._settle(subscription, sent)
        finally:
            # Batches still in `sent` are never acked: the group delivers them again. Their
            # records are left to the producer (cancelling them mid-send helps nobody).
            sent.clear()

    async def _send(
        self,
        subscription: PersistentSubscription,
        publisher: Publisher,
        batch: Sequence[RecordedEvent],
        sent: deque[tuple[list[RecordedEvent], Outcome]],
    ) -> None:
        if not batch:
            return
        messages: list[KafkaMessage] = []
        events: list[RecordedEvent] = []
        for event in batch:
            try:
                messages.append(to_message(event))
                events.append(event)
            except DECODE_ERRORS as error:
                # never publishable (a schema version this code does not know): park it, the
                # operator replays it once the code knows it
                self.parked += 1
                self.last_error = f"cannot decode {event.stream}@{event.version}: {error}"
                logger.error("event=relay_parked worker=%s %s", self.worker_id, self.last_error)
                await subscription.nack(event, NackAction.PARK)
        sent.append((events, await publisher.publish(messages)))

    async def _settle(
        self,
        subscription: PersistentSubscription,
        sent: deque[tuple[list[RecordedEvent], Outcome]],
    ) -> None:
        """Wait for the oldest batch's acknowledgements; ack each acknowledged event in the
        store, nack the others for a retry."""
        events, outcome = sent.popleft()
        results = await outcome
        failed: BaseException | None = None
        newest: RecordedEvent | None = None
        for event, result in zip(events, results, strict=True):
            if result is None:
                await subscription.ack(event)
                self.published += 1
                RELAY_PUBLISHED.inc()
                newest = event
            else:
                failed = failed or result
                await subscription.nack(event, NackAction.RETRY)
        if newest is not None:
            RELAY_LAG_SECONDS.set(
                max(0.0, (datetime.now(UTC) - newest.recorded_at).total_seconds())
            )
        if failed is not None:
            raise PublishFailed(f"the broker did not acknowledge the batch: {failed!r}") from failed
