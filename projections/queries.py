"""The read service the API calls: orders, pages of orders, stats and projection statuses.

Reads go to the namespace the pointer names, cached in-process (`NamespacePointer`): refreshed at
once when the feed hears a switch, and after at most `POINTER_TTL` otherwise. A rebuild waits longer
than that before it drops the old namespace, so no reader is left on dropped keys.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import AsyncGenerator, Callable
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from domain.events import OrderStatus
from projections.feed import ChangeFeed
from projections.fields import MetaFields, StatsFields, parse_revenue_field
from projections.keys import (
    POSITION_DIGITS,
    NamespaceKeys,
    ProjectionKeys,
    as_text,
    member_order_id,
)
from projections.redis_store import view_from_hash
from projections.status import projection_statuses, views_behind
from projections.views import (
    ChangesMissed,
    DashboardStats,
    OrderPage,
    OrderView,
    ProjectionStatus,
    StatusStats,
    ViewsUnavailable,
)

POINTER_TTL = 1.0
MAX_VIEW_PAGE = 100
WAIT_POLL = 0.02  # without a feed, wait_for_version polls this often


Read = Callable[[Pipeline], object]
"""Queues one read on a pipeline."""


def _hgetall(key: str) -> Read:
    return lambda pipe: pipe.hgetall(key)


class InvalidCursor(ValueError):
    """An `after` cursor this service did not hand out."""


def encode_cursor(member: str) -> str:
    """The opaque cursor of an index member."""
    return base64.urlsafe_b64encode(member.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The index member of a cursor."""
    try:
        member = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise InvalidCursor(cursor) from error
    if len(member) <= POSITION_DIGITS or not member[:POSITION_DIGITS].isdigit():
        raise InvalidCursor(cursor)
    return member


class NamespacePointer:
    """The serving namespace, cached for POINTER_TTL; `refresh(ns)` on a switch message."""

    def __init__(self, redis: Redis, keys: ProjectionKeys) -> None:
        self.redis = redis
        self.keys = keys
        self._value: str | None = None
        self._expires = 0.0

    def refresh(self, namespace: str | None = None) -> None:
        """Forget the cached value (or replace it with the namespace just switched to)."""
        self._value = namespace
        self._expires = time.monotonic() + POINTER_TTL if namespace else 0.0

    async def get(self) -> str | None:
        """The serving namespace (None: Redis holds no views yet)."""
        if self._value is None or time.monotonic() >= self._expires:
            raw = await self.redis.get(self.keys.pointer)
            self.refresh(None if raw is None else as_text(raw))
        return self._value


def _stats_from_hash(raw: dict[Any, Any]) -> DashboardStats:
    counts = dict.fromkeys(OrderStatus, 0)
    revenue = {status: Decimal("0.00") for status in OrderStatus}
    total = 0
    position = 0
    for key, value in raw.items():
        name = as_text(key)
        if name == StatsFields.ORDERS:
            total = int(value)
        elif name == StatsFields.POSITION:
            position = int(value)
        elif name.startswith(StatsFields.COUNT_PREFIX):
            counts[OrderStatus(name[len(StatsFields.COUNT_PREFIX) :])] = int(value)
        elif name.startswith(StatsFields.REVENUE_PREFIX) and int(value):
            status, scale = parse_revenue_field(name)
            revenue[OrderStatus(status)] += Decimal(int(value)).scaleb(-scale)
    return DashboardStats(
        total_orders=total,
        by_status=tuple(
            StatusStats(status=s, count=counts[s], revenue=revenue[s]) for s in OrderStatus
        ),
        position=position,
    )


class OrderQueries:
    """Queries over the views. Build once per process with the shared client (and feed)."""

    def __init__(
        self, redis: Redis, *, prefix: str = "orders", feed: ChangeFeed | None = None
    ) -> None:
        self.redis = redis
        self.keys = ProjectionKeys(prefix)
        self.pointer = NamespacePointer(redis, self.keys)
        self.feed = feed
        self._stats_read: tuple[int, asyncio.Future[DashboardStats]] | None = None
        if feed is not None and feed.on_switch is None:
            feed.on_switch = self.pointer.refresh

    async def _namespace(self) -> NamespaceKeys:
        ns = await self.pointer.get()
        if not ns:
            raise ViewsUnavailable("Redis holds no views (empty, or not yet caught up)")
        return NamespaceKeys(ns)

    async def _read_ready(self, keys: NamespaceKeys, *reads: Read) -> list[Any]:
        """Run `reads` (each queues one command) in one MULTI/EXEC with the namespace's ready
        flag, and refuse the answer unless the views were complete at that very moment: after
        Redis came back empty, a namespace exists but is being refilled (or the pointer still
        names one that is gone), and its partial content must not pass for the truth."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(keys.meta, MetaFields.READY)
            for read in reads:
                read(pipe)
            ready, *replies = await pipe.execute()
        if ready is None or as_text(ready) != "1":
            self.pointer.refresh()
            raise ViewsUnavailable("the views are being refilled after a loss")
        return replies

    async def get_order(self, order_id: str) -> OrderView | None:
        """The order's view, None if the views hold no such order; raises ViewsUnavailable while
        the views are not complete."""
        keys = await self._namespace()
        (raw,) = await self._read_ready(keys, lambda pipe: pipe.hgetall(keys.order(order_id)))
        return view_from_hash(raw)

    async def wait_for_version(
        self, order_id: str, min_version: int, wait: float = 2.0
    ) -> OrderView | None:
        """The view once it reaches `min_version`, or whatever it is after `wait` seconds.

        Subscribes before it reads, so a change landing between the two is not missed.
        """
        if self.feed is None:
            return await self._poll_for_version(order_id, min_version, wait)
        async with self.feed.listen(order_id=order_id) as listener:
            view = await self._order_if_ready(order_id)
            try:
                async with asyncio.timeout(wait):
                    while view is None or view.version < min_version:
                        change = await listener.get()
                        if change is None or change.version >= min_version:
                            view = await self._order_if_ready(order_id)
            except TimeoutError:
                view = await self.get_order(order_id)
        return view

    async def _order_if_ready(self, order_id: str) -> OrderView | None:
        """The view, or None while the views are being filled (a wait goes on: recovery ends
        with a RESYNC to every listener)."""
        try:
            return await self.get_order(order_id)
        except ViewsUnavailable:
            return None

    async def _poll_for_version(
        self, order_id: str, min_version: int, wait: float
    ) -> OrderView | None:
        deadline = time.monotonic() + wait
        while True:
            if time.monotonic() > deadline:
                return await self.get_order(order_id)
            view = await self._order_if_ready(order_id)
            if view is not None and view.version >= min_version:
                return view
            await asyncio.sleep(WAIT_POLL)

    async def list_orders(
        self,
        *,
        customer_id: str | None = None,
        status: OrderStatus | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> OrderPage:
        """Orders newest first, filtered by customer and/or status, `first` (<= 100) at a time."""
        if first < 0:
            raise ValueError("first must not be negative")
        first = min(first, MAX_VIEW_PAGE)
        keys = await self._namespace()
        if customer_id is not None and status is not None:
            index = keys.customer_status_index(customer_id, status.value)
        elif customer_id is not None:
            index = keys.customer_index(customer_id)
        elif status is not None:
            index = keys.status_index(status.value)
        else:
            index = keys.all_index
        member = decode_cursor(after) if after else None
        # One transaction, so the count, the page and what precedes it agree. Members sort newest
        # last: the ones at or after the cursor's come before this page.
        reads: list[Read] = [lambda pipe: pipe.zcard(index)]
        if member is not None:
            reads.append(lambda pipe: pipe.zlexcount(index, f"[{member}", "+"))
        if first:
            start = "+" if member is None else f"({member}"
            reads.append(
                lambda pipe: pipe.zrange(
                    index, start, "-", desc=True, bylex=True, offset=0, num=first + 1
                )
            )
        replies = await self._read_ready(keys, *reads)
        total = int(replies[0])
        before = int(replies[1]) if member is not None else 0
        members = [as_text(m) for m in replies[-1]] if first else []
        page, more = members[:first], len(members) > first
        hashes = (
            await self._read_ready(keys, *(_hgetall(keys.order(member_order_id(m))) for m in page))
            if page
            else []
        )
        pairs = [(m, v) for m, h in zip(page, hashes, strict=True) if (v := view_from_hash(h))]
        cursors = tuple(encode_cursor(m) for m, _ in pairs)
        return OrderPage(
            orders=tuple(v for _, v in pairs),
            cursors=cursors,
            has_next_page=more,
            end_cursor=cursors[-1] if cursors else None,
            has_previous_page=before > 0,
            total_count=total,
        )

    async def dashboard_stats(self) -> DashboardStats:
        """Order count, and count and revenue per status, with the position they reflect."""
        keys = await self._namespace()
        (raw,) = await self._read_ready(keys, _hgetall(keys.stats))
        return _stats_from_hash(raw)

    async def _stats_after(self, generation: int) -> DashboardStats:
        """The stats, read once for all the watchers one stats signal woke (a thousand dashboards
        would otherwise read them a thousand times per signal, and run out of connections). The
        shared read starts after that signal, so it holds every change that led to it."""
        shared = self._stats_read
        if shared is None or shared[0] != generation:
            shared = (generation, asyncio.ensure_future(self.dashboard_stats()))
            self._stats_read = shared
        # One watcher going away must not cancel the read the others wait for.
        return await asyncio.shield(shared[1])

    async def ensure_not_behind(self) -> None:
        """Raise `ViewsUnavailable` when the views are known to be behind the log (a failing
        or lost projector): then a view that is missing may be an order that exists, and null
        would be a wrong answer."""
        reason = views_behind(await self.projection_statuses())
        if reason is not None:
            raise ViewsUnavailable(f"the views are behind the log ({reason})")

    async def projection_statuses(self) -> list[ProjectionStatus]:
        """Each projection's position, lag, state, parked count and last error, as its workers
        last recorded them (about every second)."""
        return await projection_statuses(self.redis, self.keys)

    async def watch_order(self, order_id: str) -> AsyncGenerator[OrderView, None]:
        """The current view (if any), then the view after every change (needs the feed)."""
        assert self.feed is not None, "live queries need the change feed"
        async with self.feed.listen(order_id=order_id) as listener:
            last = 0
            view = await self.get_order(order_id)
            while True:
                if view is not None and view.version > last:
                    last = view.version
                    yield view
                change = await listener.get()
                # A change carries the view it made, so no version is skipped when several land
                # at once; after missed changes (RESYNC) the current view is what there is.
                if change is not None and change.view is not None:
                    view = change.view
                else:
                    view = await self.get_order(order_id)

    async def watch_orders(
        self, *, customer_id: str | None = None, status: OrderStatus | None = None
    ) -> AsyncGenerator[OrderView, None]:
        """The view of every order changed from now on, filtered (needs the feed)."""
        assert self.feed is not None, "live queries need the change feed"
        async with self.feed.listen(customer_id=customer_id, status=status) as listener:
            async for change in listener:
                if change is None:
                    # Changes were lost (Redis went away, or this listener fell behind) and the
                    # feed cannot replay them: end with a signal, so the client re-queries the
                    # views and subscribes again, rather than miss them silently.
                    raise ChangesMissed("live changes were missed; re-query, then subscribe again")
                view = change.view or await self.get_order(change.order_id)
                if view is not None and view.version >= change.version:
                    yield view

    async def watch_stats(self) -> AsyncGenerator[DashboardStats, None]:
        """The current stats, then again after changes, at most ~10 a second (needs the feed)."""
        assert self.feed is not None, "live queries need the change feed"
        async with self.feed.listen_stats() as signal:
            last = await self.dashboard_stats()
            yield last
            while True:
                await signal.wait()
                signal.clear()
                stats = await self._stats_after(self.feed.stats_generation)
                if stats != last:
                    last = stats
                    yield stats
