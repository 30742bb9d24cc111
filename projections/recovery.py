"""Catching the views up from the log: after Redis came back empty or behind, and for rebuilds.

Redis is a cache of the log. Each namespace records a watermark: a position at or before which
every order event is in the views. It is only ever raised to a position known to be applied (the
end of a catch-up, or the subscription's checkpoint: acked means applied), so a Redis restored to an
older state carries an older but still true watermark, and catching up from it is exact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from application.codec import DECODE_ERRORS, ORDER_EVENTS
from eventstore.port import EventStore, RecordedEvent
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

    Three stages overlap: the log reads page N+2 (in its thread) while this decodes page N+1 and
    Redis applies page N; pages still reach Redis strictly in order.
    """
    tally = _Tally()
    done = 0
    first: int | None = None
    last: int | None = None
    fetch = asyncio.ensure_future(
        store.read_all(from_position=from_position, limit=page_size, filter=ORDER_EVENTS)
    )
    applying: asyncio.Future[list[ApplyResult]] | None = None
    previous: list[Packed] = []
    try:
        while records := await fetch:
            first = records[0].position if first is None else first
            last = records[-1].position
            fetch = asyncio.ensure_future(
                store.read_all(from_position=last + 1, limit=page_size, filter=ORDER_EVENTS)
            )
            changes, bad = _changes(records)
            tally.failed += bad
            if applying is not None:
                tally.add(previous, await applying)
            applying = asyncio.ensure_future(
                views.apply_packed(changes, namespace=namespace, publish=publish)
            )
            previous = changes
            done += len(records)
            if progress is not None:
                progress(done, _estimate(done, first, last, head))
        if applying is not None:
            tally.add(previous, await applying)
            applying = None
    finally:
        fetch.cancel()
        if applying is not None:
            applying.cancel()
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
