"""Catch-up subscriptions on the embedded store: `eventstore.catchup`'s rounds over pages read
on the reader pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

from eventstore.catchup import catch_up_all, catch_up_stream
from eventstore.embedded import reads
from eventstore.embedded.pool import ReaderPool
from eventstore.notify import HeadNotifier
from eventstore.port import EventFilter, RecordedEvent

PAGE_SIZE = 500


def subscribe_stream(
    pool: ReaderPool,
    notifier: HeadNotifier,
    stream: str,
    *,
    after_version: int | None = None,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[RecordedEvent]:
    """Events of `stream` after `after_version` (exclusive), then live."""

    async def page(from_version: int) -> list[RecordedEvent]:
        events: list[RecordedEvent] = await pool.run(
            partial(reads.read_stream, stream=stream, from_version=from_version, limit=page_size)
        )
        return events

    return catch_up_stream(page, notifier, after_version=after_version)


def subscribe_all(
    pool: ReaderPool,
    notifier: HeadNotifier,
    *,
    after_position: int | None = None,
    filter: EventFilter | None = None,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[RecordedEvent]:
    """Events of the global log after `after_position` (exclusive) that `filter` selects, then
    live."""
    selection = filter or EventFilter()

    async def page(after: int) -> tuple[list[RecordedEvent], int]:
        scanned: tuple[list[RecordedEvent], int] = await pool.run(
            partial(reads.scan_all, after=after, limit=page_size, filter=selection)
        )
        return scanned

    return catch_up_all(page, notifier, after_position=after_position)
