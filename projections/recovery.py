"""Catching the views up from the log: after Redis came back empty or behind, and for rebuilds.

Redis is a cache of the log. Each namespace records a watermark: a position at or before which
every order event is in the views. It is only ever raised to a position known to be applied (the
end of a catch-up, or the subscription's checkpoint: acked means applied), so a Redis restored to an
older state carries an older but still true watermark, and catching up from it is exact.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from application.codec import DECODE_ERRORS, ORDER_EVENTS
from eventstore.port import EventStore, RecordedEvent
from projections.apply_stream import ApplyStream, applying
from projections.packing import Packed, packed_change
from projections.redis_store import ApplyResult, RedisViewStore

logger = logging.getLogger(__name__)

PAGE_SIZE = 2000

Progress = Callable[[int, int], None]
"""Called with (events done, events in all) as a catch-up runs. The total is estimated from how far
through the log's positions the catch-up is (the port has no count), and exact at the end."""


class ViewsLost(RuntimeError):
    """Redis lost its namespace while we were writing to it: recover again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CatchUpResult:
    """How a catch-up ended: the last position read, and counts by outcome."""

    last_position: int | None
    applied: int
    duplicates: int
    unprojectable: int


def _changes(records: list[RecordedEvent]) -> tuple[list[Packed], int]:
    changes: list[Packed] = []
    failed = 0
    for record in records:
        try:
            changes.append(packed_change(record))
        except DECODE_ERRORS as error:
            failed += 1
            logger.error(
                "event=unprojectable stream=%s version=%d error=%s",
                record.stream,
                record.version,
                error,
            )
    return changes, failed


@dataclass(slots=True)
class _Tally:
    """Counts by outcome as a catch-up's pages come back from Redis."""

    applied: int = 0
    duplicates: int = 0
    failed: int = 0

    def add(self, changes: list[Packed], results: list[ApplyResult]) -> None:
        applied, duplicates = results.count(ApplyResult.OK), results.count(ApplyResult.DUPLICATE)
        if applied + duplicates == len(results) == len(changes):  # the usual page, counted in C
            self.applied += applied
            self.duplicates += duplicates
            return
        for change, result in zip(changes, results, strict=True):
            if result is ApplyResult.OK:
                self.applied += 1
            elif result is ApplyResult.DUPLICATE:
                self.duplicates += 1
            elif result is ApplyResult.RESET:
                raise ViewsLost("Redis lost the views during a catch-up")
            else:
                self.failed += 1
                order_id, version, position = change[:3]  # as packed: position padded
                logger.error(
                    "event=catch_up_unprojectable result=%s order=%s version=%s position=%d",
                    result.name,
                    order_id,
                    version,
                    int(position),
                )

    def result(self, last_position: int | None) -> CatchUpResult:
        return CatchUpResult(
            last_position=last_position,
            applied=self.applied,
            duplicates=self.duplicates,
            unprojectable=self.failed,
        )


def _estimate(done: int, first: int, last: int, head: int | None) -> int:
    """Events in all, guessed from how far through the positions up to `head` `done` events
    (from `first` to `last`) reached: the port has no count."""
    span = (head or last) - first + 1
    return max(done, round(done * span / (last - first + 1)))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Page:
    """A page of the log, decoded: its changes and what else `catch_up` reports of it."""

    changes: list[Packed]
    events: int
    failed: int
    first: int
    last: int


READ_AHEAD = 2
"""Decoded pages waiting for Redis, beyond the one being decoded and the one being read."""

IN_FLIGHT = 2
"""Pages written to Redis and not yet answered: while Redis applies one, the next is on its way
and the replies of the one before are read, so Redis never waits for the client."""


async def _read(store: EventStore, from_position: int | None, limit: int) -> list[RecordedEvent]:
    return await store.read_all(from_position=from_position, limit=limit, filter=ORDER_EVENTS)


_Pages = asyncio.Queue["_Page | Exception | None"]
"""Decoded pages from `_read_pages` to `catch_up`: None after the last, or the reader's error."""


async def _read_pages(
    store: EventStore, from_position: int | None, page_size: int, pages: _Pages
) -> None:
    """Read the log from `from_position` to the head into `pages`, decoded. The next page is
    read while this one is decoded, in a worker thread: neither holds up the event loop, which
    sends to Redis. An error ends the pages, for `catch_up` to raise."""
    fetch = asyncio.ensure_future(_read(store, from_position, page_size))
    try:
        while records := await fetch:
            last = records[-1].position
            fetch = asyncio.ensure_future(_read(store, last + 1, page_size))
            changes, failed = await asyncio.to_thread(_changes, records)
            page = _Page(
                changes=changes,
                events=len(records),
                failed=failed,
                first=records[0].position,
                last=last,
            )
            await pages.put(page)
        await pages.put(None)
    except Exception as error:  # not swallowed: catch_up raises it
        await pages.put(error)
    finally:
        await _discard(fetch)


async def _discard(task: asyncio.Future[Any]) -> None:
    """Cancel `task` and wait for it to end, its outcome unwanted (an error of it, if any, is
    the one already being raised, or was caused by that one)."""
    task.cancel()
    await asyncio.wait((task,))
    if not task.cancelled():
        task.exception()  # retrieved: not logged as never retrieved


async def catch_up(
    store: EventStore,
    views: RedisViewStore,
    *,
    from_position: int | None,
    namespace: str = "",
    publish: bool = True,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
    head: int | None = None,
) -> CatchUpResult:
    """Apply every order event from `from_position` (inclusive; None: the start) to the head.

    Three stages overlap: the log is read and decoded ahead (in worker threads, see
    `_read_pages`), and pages are written to Redis on one connection as they come, without
    waiting for the replies of the pages before (`projections.apply_stream`); Redis still
    applies them strictly in order.
    """
    tally = _Tally()
    done = 0
    first: int | None = None
    last: int | None = None
    pages: _Pages = asyncio.Queue(maxsize=READ_AHEAD)
    reader = asyncio.create_task(_read_pages(store, from_position, page_size, pages))
    sent: collections.deque[_Page] = collections.deque()

    async def settle(stream: ApplyStream) -> None:
        nonlocal done
        page = sent.popleft()
        tally.add(page.changes, await stream.receive())
        done += page.events
        if progress is not None and first is not None:
            progress(done, _estimate(done, first, page.last, head))

    try:
        async with applying(views, namespace=namespace, publish=publish) as stream:
            while (page := await pages.get()) is not None:
                if isinstance(page, Exception):
                    raise page
                first = page.first if first is None else first
                last = page.last
                tally.failed += page.failed
                await stream.send(page.changes)
                sent.append(page)
                if len(sent) > IN_FLIGHT:
                    await settle(stream)
            while sent:
                await settle(stream)
    finally:
        await _discard(reader)
    return tally.result(last)


async def recover(
    store: EventStore, views: RedisViewStore, *, progress: Progress | None = None
) -> CatchUpResult:
    """Bring the serving views up to the log's head from where Redis really is.

    Creates the namespace if Redis has none (empty after a flush or a restart), catches up from its
    watermark (the start if it has none), then records the new watermark and marks it ready.
    """
    ns, created = await views.ensure_namespace()
    mark, _ = await views.watermark(ns)
    logger.info(
        "event=views_recovering namespace=%s from=%s redis_empty=%s",
        ns,
        "start" if mark is None else mark,
        "yes" if created else "no",
    )
    # Not published change by change: listeners are told once, below, to re-read everything.
    head = await store.head_position() if progress is not None else None
    result = await catch_up(
        store, views, from_position=mark, publish=False, progress=progress, head=head
    )
    reached = max(p for p in (result.last_position, mark, 0) if p is not None)
    outcome = await views.raise_watermark(reached, mark_ready=True, namespace=ns)
    if outcome == "reset":
        raise ViewsLost("Redis lost the views during recovery")
    await views.announce_namespace(ns)
    logger.info(
        "event=views_recovered namespace=%s position=%d applied=%d duplicates=%d unprojectable=%d",
        ns,
        reached,
        result.applied,
        result.duplicates,
        result.unprojectable,
    )
    return result
