"""Catch-up subscriptions over any store that reads pages and signals commits: history in pages,
then live, gap-free and without duplicates.

Each round registers a waiter, then reads the next page after the last event delivered. An empty
page means the subscriber is live: it sleeps until the waiter fires. Because the waiter exists
before the read, a commit landing in between wakes it, so nothing falls between history and live.
The embedded and PostgreSQL stores both subscribe this way; they differ only in how a page is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from eventstore.notify import HeadNotifier
from eventstore.port import RecordedEvent, StoreUnavailable, SubscriptionDropped

StreamPage = Callable[[int], Awaitable[list[RecordedEvent]]]
"""The stream's events from a version on (inclusive), at most a page of them."""
LogPage = Callable[[int], Awaitable[tuple[list[RecordedEvent], int]]]
"""The selected events of the global log after a position, and the position scanned up to (a
filter may skip many events, and the next page starts after them)."""


async def catch_up_stream(
    read_page: StreamPage, notifier: HeadNotifier, *, after_version: int | None = None
) -> AsyncIterator[RecordedEvent]:
    """Events of a stream after `after_version` (exclusive), then live. Raises `StreamDeleted`
    when the stream is tombstoned, `SubscriptionDropped` when the store closes or goes away."""
    last = after_version or 0
    while True:
        waiter = notifier.register()
        try:
            try:
                page = await read_page(last + 1)
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


async def catch_up_all(
    read_page: LogPage, notifier: HeadNotifier, *, after_position: int | None = None
) -> AsyncIterator[RecordedEvent]:
    """Selected events of the global log after `after_position` (exclusive), then live. Raises
    `SubscriptionDropped` when the store closes or goes away."""
    last = after_position or 0
    while True:
        waiter = notifier.register()
        try:
            try:
                page, scanned = await read_page(last)
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
