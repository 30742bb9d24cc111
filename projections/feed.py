"""The live feed: ONE Redis pub/sub connection per process, fanned out in-process.

The apply script publishes each projected change on its namespace's channel; this feed
pattern-subscribes to all of them (and to the switch channel of rebuilds) and hands each change to
the in-process listeners that want it. A listener is a bounded queue registered for the lifetime of
an `async with`; leaving the block (a websocket closing cancels it) removes it, so nothing stays
behind. A listener that falls behind, or a reconnect of the feed, gets a `RESYNC` marker instead of
the changes it missed: it should re-read the views, which are the truth, not the messages.

The feed hears the changes only while someone listens: the changes pattern is subscribed when the
first listener comes (which waits for Redis to confirm it, so what it reads next cannot miss a
change) and unsubscribed LINGER seconds after the last one left. Every change is a message to
this process otherwise, read and thrown away when nobody watches: a wake-up and a redis-py
parse per change in a process that serves commands with the projector in it. The switch
channel stays subscribed for good: the queries' namespace pointer follows it.

On a Redis Cluster the feed uses plain PUBLISH / PSUBSCRIBE, not sharded pub/sub: a plain message
reaches every node over the cluster bus, so the one subscription (placed by redis-py on the node
of the projection's hash tag) hears every change wherever it was published. Sharded pub/sub would
save that broadcast, but it has no pattern subscribe (one SSUBSCRIBE per namespace channel) and
gains nothing while every key of a projection, hence every publisher, lives in one slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from domain.events import OrderStatus
from projections.fields import ChangeFields
from projections.keys import ProjectionKeys, as_text
from projections.redis_store import view_from_hash
from projections.views import Change

logger = logging.getLogger(__name__)

RESYNC: Final = None
"""Queued instead of changes a listener may have missed: re-read the views."""

QUEUE_SIZE = 256
START_TIMEOUT = 5.0
MAX_RECONNECT_DELAY = 1.0  # Redis back: live updates resume within about a second
STATS_INTERVAL = 0.1  # dashboardStats pushes are coalesced to at most ~10 a second
LINGER = 5.0
"""Seconds the changes stay subscribed after the last listener left: a process whose clients
come and go (each `wait_for_version` is a listener) does not subscribe for each of them."""


@dataclass(eq=False, slots=True, kw_only=True)
class Listener:
    """One in-process consumer of changes, filtered. Iterate it or `await get()`."""

    order_id: str | None = None
    customer_id: str | None = None
    status: OrderStatus | None = None
    queue: asyncio.Queue[Change | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def wants(self, change: Change) -> bool:
        """Whether the change concerns an order that passes the filters before or after it: an
        order leaving the status filter is wanted once more, so a live list can drop it."""
        return (
            (self.order_id is None or change.order_id == self.order_id)
            and (self.customer_id is None or change.customer_id == self.customer_id)
            and (
                self.status is None
                or change.status is self.status
                or change.previous_status is self.status
            )
        )

    def offer(self, item: Change | None) -> None:
        """Queue without blocking the feed; a full queue collapses into one RESYNC."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)

    async def get(self) -> Change | None:
        """The next change (or RESYNC); bound the wait with `asyncio.timeout`."""
        return await self.queue.get()

    def __aiter__(self) -> AsyncIterator[Change | None]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Change | None]:
        while True:
            yield await self.queue.get()


def parse_change(payload: bytes | str) -> Change:
    """A change from the apply script's JSON message."""
    return _change(orjson.loads(payload), with_view=True)


def _change(raw: dict[str, Any], *, with_view: bool) -> Change:
    """The change of a parsed message; its view (the costly part) only `with_view`."""
    f = ChangeFields
    previous = raw.get(f.PREVIOUS_STATUS)
    return Change(
        namespace=str(raw[f.NAMESPACE]),
        order_id=str(raw[f.ORDER_ID]),
        version=int(raw[f.VERSION]),
        customer_id=str(raw[f.CUSTOMER_ID]),
        status=OrderStatus(raw[f.STATUS]),
        position=int(raw[f.POSITION]),
        view=view_from_hash(raw[f.VIEW]) if with_view and raw.get(f.VIEW) else None,
        previous_status=None if previous is None else OrderStatus(previous),
        traceparent=raw.get(f.TRACEPARENT),
    )


class ChangeFeed:
    """The process's one subscriber to projected changes. `start()` once, `stop()` at shutdown."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "orders",
        on_switch: Callable[[str], None] | None = None,
    ) -> None:
        self.redis = redis
        self.keys = ProjectionKeys(prefix)
        self.on_switch = on_switch  # e.g. a NamespacePointer's refresh
        self._by_order: dict[str, set[Listener]] = {}
        self._others: set[Listener] = set()
        self._stats: set[asyncio.Event] = set()
        self._stats_dirty = asyncio.Event()
        self.stats_generation = 0
        """Counts the stats signals: watchers woken by the same one may share one read."""
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = asyncio.Event()
        self._first_attempt = asyncio.Event()  # set once the first subscription attempt ended
        self._pubsub: PubSub | None = None  # the connected subscription, while there is one
        self.hearing = asyncio.Event()
        """Set while Redis confirms the changes pattern (someone listens, or did lately)."""
        self._release: asyncio.TimerHandle | None = None
        self._asking = False  # a PSUBSCRIBE of the changes is on its way, not yet confirmed

    @property
    def listener_count(self) -> int:
        """How many listeners are registered (for tests and metrics)."""
        return sum(len(s) for s in self._by_order.values()) + len(self._others) + len(self._stats)

    async def start(self, wait: float = START_TIMEOUT) -> None:
        """Start listening: returns once subscribed, or as soon as the first attempt fails (at
        most `wait` seconds), Redis being down: the feed keeps trying in the background; the
        service binds and serves meanwhile and answers UNAVAILABLE where it needs Redis."""
        self._first_attempt.clear()
        self._tasks = [
            asyncio.create_task(self._supervise(self._run, "change-feed"), name="change-feed"),
            asyncio.create_task(
                self._supervise(self._tick_stats, "change-feed-stats"), name="change-feed-stats"
            ),
        ]
        try:
            async with asyncio.timeout(wait):
                await self._first_attempt.wait()
        except TimeoutError:
            logger.warning("event=feed_not_connected after_s=%.1f retrying=background", wait)

    async def _supervise(self, body: Callable[[], Awaitable[None]], name: str) -> None:
        """Run `body` for good: an unexpected exception is logged and it starts again (after a
        pause), so live subscribers are never left on a dead feed."""
        while True:
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("event=feed_task_failed task=%s (restarting)", name)
                self.connected.clear()
                self._dispatch(RESYNC)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Stop listening; listeners still registered stay registered but hear nothing more."""
        if self._release is not None:
            self._release.cancel()
            self._release = None
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @contextlib.asynccontextmanager
    async def listen(
        self,
        *,
        order_id: str | None = None,
        customer_id: str | None = None,
        status: OrderStatus | None = None,
    ) -> AsyncIterator[Listener]:
        """A listener for the changes matching every given filter, for the block's duration."""
        listener = Listener(order_id=order_id, customer_id=customer_id, status=status)
        if order_id is not None:
            self._by_order.setdefault(order_id, set()).add(listener)
        else:
            self._others.add(listener)
        try:
            if not await self._hear_changes():
                listener.offer(RESYNC)
            yield listener
        finally:
            if order_id is not None:
                group = self._by_order.get(order_id)
                if group is not None:
                    group.discard(listener)
                    if not group:
                        del self._by_order[order_id]
            else:
                self._others.discard(listener)
            self._release_later()

    @contextlib.asynccontextmanager
    async def listen_stats(self) -> AsyncIterator[asyncio.Event]:
        """An event set (at most every STATS_INTERVAL) when the stats may have changed."""
        signal = asyncio.Event()
        self._stats.add(signal)
        try:
            if not await self._hear_changes():
                signal.set()
            yield signal
        finally:
            self._stats.discard(signal)
            self._release_later()

    async def _hear_changes(self) -> bool:
        """Make sure the changes pattern is subscribed, for a listener just registered; False
        when Redis did not confirm it in time (changes may be missed: the caller re-reads).
        While the feed reconnects, or when the connection fails now, the reconnect subscribes
        it and sends every listener a RESYNC."""
        if self._release is not None:
            self._release.cancel()
            self._release = None
        if self.hearing.is_set():
            return True
        pubsub = self._pubsub
        if pubsub is None:
            return True
        asking = not self._asking
        if asking:
            # One PSUBSCRIBE for every listener that comes before Redis confirms it: a
            # thousand subscribers arriving together must not queue a thousand of them (and
            # then all wake together, each to read its view).
            self._asking = True
            try:
                await pubsub.psubscribe(self.keys.changes_pattern)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                self._asking = False
                return True
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await self.hearing.wait()
        except TimeoutError:
            return False
        finally:
            if asking:
                self._asking = False
        return True

    def _release_later(self) -> None:
        """Unsubscribe the changes LINGER seconds after the last listener left (if none came)."""
        if self.listener_count == 0 and self._release is None and self._pubsub is not None:
            loop = asyncio.get_running_loop()
            self._release = loop.call_later(LINGER, self._unsubscribe_if_unheard)

    def _unsubscribe_if_unheard(self) -> None:
        self._release = None
        pubsub = self._pubsub
        if self.listener_count or pubsub is None:
            return
        task = asyncio.create_task(self._punsubscribe(pubsub), name="change-feed-unsubscribe")
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    async def _punsubscribe(self, pubsub: PubSub) -> None:
        if self.listener_count:  # one came since
            return
        self.hearing.clear()
        # A failure is the reader's to notice (it reconnects, and subscribes only what is
        # wanted then).
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
            await pubsub.punsubscribe(self.keys.changes_pattern)

    def _unsubscribed(self) -> None:
        """Redis confirmed the changes unsubscribed. Its PSUBSCRIBE may have overtaken the
        PUNSUBSCRIBE on the wire (redis-py awaits before it writes), and been confirmed: then a
        listener is left unsubscribed, so it re-reads and the changes are subscribed again.
        (A PSUBSCRIBE that followed is confirmed next: nothing to do.)"""
        if not self.hearing.is_set():
            return
        self.hearing.clear()
        if not self.listener_count or self._pubsub is None:
            return
        self._dispatch(RESYNC)
        task = asyncio.create_task(self._hear_again(), name="change-feed-resubscribe")
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    async def _hear_again(self) -> None:
        await self._hear_changes()

    def _dispatch(self, change: Change | None) -> None:
        if change is None:
            targets = {x for group in self._by_order.values() for x in group} | self._others
            for listener in targets:
                listener.offer(RESYNC)
        else:
            for listener in self._wanting(change):
                listener.offer(change)
        self._stats_dirty.set()

    def _wanting(self, change: Change) -> list[Listener]:
        """The listeners that want `change`."""
        wanting = list(self._by_order.get(change.order_id, ()))
        wanting.extend(listener for listener in self._others if listener.wants(change))
        return wanting

    async def _run(self) -> None:
        delay = 0.1
        connected_before = False
        outage = False
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.keys.switch_channel)
                self._pubsub = pubsub  # listeners from now on subscribe the changes themselves
                if self.listener_count:
                    await pubsub.psubscribe(self.keys.changes_pattern)
                self.connected.set()
                self._first_attempt.set()
                if outage:
                    logger.info("event=feed_reconnected")
                    outage = False
                if connected_before:  # whatever happened while we were away was not heard
                    self._dispatch(RESYNC)
                connected_before = True
                delay = 0.1
                confirmations = 0
                async for message in pubsub.listen():
                    if message.get("type") == "subscribe":
                        # redis-py reconnects a pubsub by itself and subscribes again: a second
                        # confirmation means the connection was lost and messages with it
                        confirmations += 1
                        if confirmations > 1:
                            logger.warning("event=feed_reconnected")
                            self._dispatch(RESYNC)
                    else:
                        self._handle(message)
                logger.warning("event=feed_subscription_ended resubscribing=yes")
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                if not outage:  # once per outage; the retries stay quiet
                    logger.warning("event=feed_lost_redis error=%r", error)
                    outage = True
                else:
                    logger.debug("event=feed_reconnect_failed error=%r", error)
                if self.connected.is_set():
                    # Tell listeners now, not when Redis is back: what happens meanwhile is
                    # not heard, and a subscriber must not take silence for "no changes".
                    self._dispatch(RESYNC)
                self.connected.clear()
                self._pubsub = None
                self.hearing.clear()
                self._first_attempt.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
            finally:
                self._pubsub = None
                self.hearing.clear()
                # Untyped before redis-py 8.2, typed since: either way mypy --strict passes.
                await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "pmessage":
            if not self._by_order and not self._others:
                # Nobody listens for changes: parsing each one would be wasted work.
                self._stats_dirty.set()
                return
            # The view is read only for a change some listener wants: most are not (a
            # subscription filtered on a customer hears every customer's changes).
            try:
                raw = orjson.loads(message["data"])
                change = _change(raw, with_view=False)
                targets = self._wanting(change)
                if targets:
                    change = _change(raw, with_view=True)
            except (ValueError, KeyError) as error:
                logger.warning("event=feed_malformed_change error=%s", error)
                return
            for listener in targets:
                listener.offer(change)
            self._stats_dirty.set()
        elif kind == "psubscribe":
            self.hearing.set()
        elif kind == "punsubscribe":
            self._unsubscribed()
        elif kind == "message":
            namespace = as_text(message["data"])
            logger.info("event=views_switched namespace=%s", namespace)
            if self.on_switch is not None:
                self.on_switch(namespace)
            self._dispatch(RESYNC)

    async def _tick_stats(self) -> None:
        while True:
            await self._stats_dirty.wait()
            self._stats_dirty.clear()
            self.stats_generation += 1
            for signal in tuple(self._stats):
                signal.set()
            await asyncio.sleep(STATS_INTERVAL)
