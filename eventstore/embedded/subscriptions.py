"""Catch-up subscriptions: history in pages, then live, gap-free and without duplicates.

Each round registers a waiter, then reads the next page after the last event delivered. An empty
page means the subscriber is live: it sleeps until the waiter fires. Because the waiter exists
before the read, a commit landing in between wakes it, so nothing falls between history and live.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

from eventstore.embedded import reads
from eventstore.embedded.notify import HeadNotifier
from eventstore.embedded.pool import ReaderPool
from eventstore.port import EventFilter, RecordedEvent, StoreUnavailable, SubscriptionDropped

PAGE_SIZE = 500


async def subscribe_stream(
    pool: ReaderPool,
    notifier: HeadNotifier,
    stream: str,
    *,
    after_version: int | None = None,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[RecordedEvent]:
    """Events of `stream` after `after_version` (exclusive), then live. Raises `StreamDeleted`
    when the stream is tombstoned, `SubscriptionDropped` when the store closes."""
    last = after_version or 0
    while True:
        waiter = notifier.register()
        try:
            try:
                page = await pool.run(
                    partial(
                        reads.read_stream, stream=stream, from_version=last + 1, limit=page_size
                    )
                )
            except StoreUnavailable as error:
                raise SubscriptionDropped("the event store closed") from error
            if not page:
                await waiter
                continue
        finally:
            notifier.discard(waiter)
        for event in page:
            last = event.version
            yield event


async def subscribe_all(
    pool: ReaderPool,
    notifier: HeadNotifier,
    *,
    after_position: int | None = None,
    filter: EventFilter | None = None,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[RecordedEvent]:
    """Events of the global log after `after_position` (exclusive) that `filter` selects, then
    live. Raises `SubscriptionDropped` when the store closes."""
    selection = filter or EventFilter()
    last = after_position or 0
    while True:
        waiter = notifier.register()
        try:
            try:
                page, scanned = await pool.run(
                    partial(reads.scan_all, after=last, limit=page_size, filter=selection)
                )
            except StoreUnavailable as error:
                raise SubscriptionDropped("the event store closed") from error
            if not page:
                last = scanned
                await waiter
                continue
        finally:
            notifier.discard(waiter)
        for event in page:
            yield event
        last = scanned
