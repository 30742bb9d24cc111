"""The projector runner: consumes the "orders-view" persistent subscription into the Redis views.

Per batch: decode (an event that cannot be decoded is parked at once, with the error recorded),
apply all in one pipelined round trip, then ack what is in the views, nack-retry gaps (an earlier
version is still on its way) and park what can never apply. Redis losing the views shows up as a
RESET from the script, or in the periodic health check; either way the runner pauses consuming,
catches the views up from their watermark, and goes on. Errors reconnect with exponential backoff.
Any number of runners (in one process or many) can share the group; `projections.pool` runs a
process's runners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.exceptions import RedisError

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
from metrics.instruments import (
    PROJECTOR_EVENTS,
    PROJECTOR_LAG_EVENTS,
    PROJECTOR_LAG_SECONDS,
    PROJECTOR_PARKED,
)
from projections.fields import StatsFields
from projections.keys import NamespaceKeys
from projections.packing import Packed, packed_change
from projections.recovery import ViewsLost, recover
from projections.redis_store import ApplyResult, RedisViewStore
from projections.status import forget_worker, record_status
from projections.views import ProjectionStatus
from telemetry.tracing import apply_spans

logger = logging.getLogger(__name__)

LAG_CAP = 10_000
"""Lag is counted by reading the log after the views' position, up to this many events."""
LAG_UNKNOWN = -1
"""The lag reported while the projector cannot read the log (`RunnerState.ERROR`)."""

GROUP_SETTINGS = SubscriptionSettings(
    filter=ORDER_EVENTS,
    # one order's events go to one worker, so several workers rarely see each other's gaps
    consumer_strategy=ConsumerStrategy.PINNED,
    # a gap resolves as soon as its predecessor is applied; retry generously before parking
    max_retry_count=50,
    message_timeout=30.0,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerSettings:
    """How a runner consumes its group."""

    name: str = "orders"
    group: str = "orders-view"
    batch_size: int = 500
    buffer_size: int = 1000
    health_interval: float = 1.0
    backoff_initial: float = 0.1
    # The store or Redis back: consuming resumes within about this long.
    backoff_max: float = 1.0


class ProjectorRunner(GroupWorker):
    """One worker of the projection. `await run(stop)` until `stop` is set."""

    def __init__(
        self,
        store: StoreWithGroups,
        views: RedisViewStore,
        *,
        settings: RunnerSettings | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings or RunnerSettings()
        super().__init__("projector", store, self.settings, GROUP_SETTINGS, worker_id)
        self.views = views
        self.position: int | None = None
        self.lag = 0
        self.parked = 0
        self._state_before_recovery = RunnerState.STOPPED
        self._run_id: str | None = None
        self._written_mark: tuple[str | None, int | None] = (None, None)
        self._next_health = 0.0
        # This projection's series, bound once: `labels()` costs more than the update.
        name = self.settings.name
        self._applied = PROJECTOR_EVENTS.labels(name)
        self._lag_events = PROJECTOR_LAG_EVENTS.labels(name)
        self._lag_seconds = PROJECTOR_LAG_SECONDS.labels(name)
        self._parked = PROJECTOR_PARKED.labels(name)

    def status(self) -> ProjectionStatus:
        """This worker's status, for the `projections` query."""
        return ProjectionStatus(
            name=self.settings.name,
            position=self.position,
            lag=self.lag,
            state=self.state,
            parked=self.parked,
            last_error=self.last_error,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, reconnecting after errors with exponential backoff."""
        while not stop.is_set():
            try:
                await self._ensure_group()
                await self._recover()
                async with self._subscribed(stop) as batches:
                    await self._consume(batches)
            except (EventStoreError, RedisError, OSError, ViewsLost) as error:
                self._failed(error)
                if self.backoff.first_failure:  # once per outage, not per retry
                    logger.warning(
                        "event=projector_error worker=%s error=%r", self.worker_id, error
                    )
                else:
                    logger.debug("event=projector_retry worker=%s error=%r", self.worker_id, error)
                await self._publish_status_quietly()
            except Exception as error:
                # A bug: loud, with its traceback, but the worker goes on after the backoff
                # rather than end quietly while the status still says "running".
                self._failed(error)
                # One traceback per run of crashes (eventstore.outage_log), not one per retry.
                if OUTAGES.failed("projector", error):
                    logger.exception("event=projector_crashed worker=%s", self.worker_id)
                await self._publish_status_quietly()
            else:
                continue
            await self.backoff.wait(stop)
        self.state = RunnerState.STOPPED
        with contextlib.suppress(RedisError, OSError):
            await forget_worker(self.views.redis, self.views.keys, self.worker_id)
        logger.info("event=projector_stopped worker=%s", self.worker_id)

    def _failed(self, error: BaseException) -> None:
        self._record_failure(error)
        self.lag = LAG_UNKNOWN  # the log cannot be read now, so how far behind is unknown
        self._lag_events.set(LAG_UNKNOWN)

    async def _recover(self) -> None:
        """Catch the views up from their watermark before serving as current."""
        if self.state is not RunnerState.CATCHING_UP:
            self._state_before_recovery = self.state
        self.state = RunnerState.CATCHING_UP
        await self._publish_status_quietly()
        while True:
            try:
                await recover(self.store, self.views)
                break
            except ViewsLost:
                logger.warning("event=projector_views_lost_again worker=%s", self.worker_id)
        self._run_id = await self._redis_run_id()
        namespace = await self.views.current_namespace()
        self._written_mark = (namespace, (await self.views.watermark(namespace))[0])
        if self._state_before_recovery is RunnerState.ERROR:
            self.last_error = None  # recovered: the error is history (the log still has it)
            OUTAGES.recovered("projector")
        self.state = RunnerState.RUNNING
        self._next_health = 0.0

    async def _consume(self, batches: Batches) -> None:
        health: asyncio.Task[str | None] | None = None
        try:
            while True:
                health = await self._tend_health(health)
                # a check under way is looked at again with the next events, or a tick later
                wait = self._next_health - time.monotonic()
                if health is not None:
                    wait = self.settings.health_interval
                batch = await batches.next_within(max(0.0, wait))
                if batch is None:
                    continue
                await self._handle(batches.subscription, batch.events)
                if batch.stopped:
                    return
                if batch.error is not None:
                    raise batch.error
        finally:
            if health is not None:
                health.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await health

    async def _handle(
        self, subscription: PersistentSubscription, batch: Sequence[RecordedEvent]
    ) -> None:
        if not batch:
            return
        changes: list[Packed] = []
        events: list[RecordedEvent] = []
        for event in batch:
            try:
                changes.append(packed_change(event))
                events.append(event)
            except DECODE_ERRORS as error:
                self._note_error(f"cannot decode {event.stream}@{event.version}: {error}")
                await subscription.nack(event, NackAction.PARK)
        with apply_spans(events) as traceparents:
            results = await self.views.apply_packed(changes, traceparents=traceparents)
        if ApplyResult.RESET in results:
            # Redis came back empty under us: rebuild the views from their (new) watermark, then
            # apply the batch again; what recovery already applied comes back as duplicates.
            await self._recover()
            results = await self.views.apply_packed(changes)
            if ApplyResult.RESET in results:
                raise ViewsLost("Redis lost the views again")
        applied = 0
        for event, result in zip(events, results, strict=True):
            if result is ApplyResult.OK or result is ApplyResult.DUPLICATE:
                applied += result is ApplyResult.OK
                await subscription.ack(event)
                if self.position is None or event.position > self.position:
                    self.position = event.position
            elif result is ApplyResult.GAP:
                await subscription.nack(event, NackAction.RETRY)
            else:
                self._note_error(f"{event.stream}@{event.version} cannot follow its view")
                await subscription.nack(event, NackAction.PARK)
        self._applied.inc(applied)

    def _note_error(self, message: str) -> None:
        logger.error("event=projector_unprojectable worker=%s error=%s", self.worker_id, message)
        self.last_error = message

    async def _redis_run_id(self) -> str:
        info = await self.views.redis.info("server")
        return str(info.get("run_id", ""))

    async def _tend_health(
        self, health: asyncio.Task[str | None] | None
    ) -> asyncio.Task[str | None] | None:
        """Start the periodic health check beside the consuming, not in its way (its round
        trips to Redis and the store would hold up the events waiting behind it); take the
        result of the last one: its error ends the consuming (backoff), views found behind are
        recovered here, between two batches. Returns the check still running, if any."""
        if health is not None and health.done():
            cause, health = health.result(), None
            if cause is not None:
                await self._recover()
        if health is None and time.monotonic() >= self._next_health:
            self._next_health = time.monotonic() + self.settings.health_interval
            health = asyncio.create_task(self._health(), name=f"projector-{self.worker_id}-health")
        return health

    async def _health(self) -> str | None:
        """Notice a Redis that lost or rewound the views (returns why: the caller recovers);
        raise the watermark; record status."""
        namespace = await self.views.current_namespace()
        mark, _ = await self.views.watermark(namespace)
        restarted = await self._redis_run_id() != self._run_id
        # a namespace's watermark never goes down, unless Redis went back to an older state
        known_ns, known_mark = self._written_mark
        rewound = known_ns == namespace and known_mark is not None and (mark or 0) < known_mark
        if restarted or rewound or namespace is None:
            cause = "restarted" if restarted else "lost_data"
            logger.warning("event=projector_views_behind worker=%s cause=%s", self.worker_id, cause)
            return cause
        info = await self.store.groups.get_subscription_info(self.settings.group)
        self.parked = info.parked
        self._parked.set(info.parked)
        checkpoint = info.checkpoint
        if (
            checkpoint is not None
            and (mark is None or checkpoint > mark)
            and await self.views.raise_watermark(checkpoint, namespace=namespace) == "ok"
        ):
            self._written_mark = (namespace, checkpoint)
        await self._measure_lag(namespace)
        await self._publish_status_quietly()
        return None

    async def _measure_lag(self, namespace: str) -> None:
        raw = await self.views.redis.hget(NamespaceKeys(namespace).stats, StatsFields.POSITION)
        if raw is not None:
            self.position = max(self.position or 0, int(raw))
        start = None if self.position is None else self.position + 1
        behind = await self.store.read_all(from_position=start, limit=LAG_CAP, filter=ORDER_EVENTS)
        # the consuming goes on meanwhile: what it applied since is not behind any more
        applied = self.position or 0
        behind = [event for event in behind if event.position > applied]
        self.lag = len(behind)
        oldest = behind[0].recorded_at if behind else None
        self._lag_events.set(self.lag)
        self._lag_seconds.set(
            0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        )

    async def _publish_status_quietly(self) -> None:
        try:
            await record_status(self.views.redis, self.views.keys, self.worker_id, self.status())
        except (RedisError, OSError) as error:
            logger.debug(
                "event=projector_status_unrecorded worker=%s error=%s", self.worker_id, error
            )
