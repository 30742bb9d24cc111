"""Catch-up subscriptions on PostgreSQL: history in pages, then live, gap-free and without
duplicates (the same round as the embedded store's: register a waiter, read, sleep if empty)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from eventstore.embedded.notify import HeadNotifier
from eventstore.port import EventFilter, RecordedEvent, StoreUnavailable, SubscriptionDropped
from eventstore.postgres import reads

PAGE_SIZE = 1000

T = TypeVar("T")
Reader = Callable[[Callable[[Any], Awaitable[T]]], Awaitable[T]]


async def subscribe_stream(
    run: Reader[Any],
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
                page: list[RecordedEvent] = await run(
                    partial(
                        reads.read_stream, stream=stream, from_version=last + 1, limit=page_size
                    )
                )
            except StoreUnavailable as error:
                raise SubscriptionDropped(f"the event store is unavailable: {error}") from error
            if not page:
                await waiter
                continue
        finally:
            notifier.discard(waiter)
        for event in page:
            last = event.version
            yield event


async def subscribe_all(
    run: Reader[Any],
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
                page, scanned = await run(
                    partial(reads.scan_all, after=last, limit=page_size, filter=selection)
                )
            except StoreUnavailable as error:
                raise SubscriptionDropped(f"the event store is unavailable: {error}") from error
            if not page:
                last = scanned
                await waiter
                continue
        finally:
            notifier.discard(waiter)
        for event in page:
            yield event
        last = scanned
