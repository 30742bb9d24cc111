"""The deadline of every event-store call on a request's path (STORE_TIMEOUT).

A store that stops answering without closing its connections (a stopped EventStoreDB, a locked
PostgreSQL table, a SQLite writer stuck behind a slow disk) would otherwise hold each request for
as long as the stall lasts. Past the deadline the call raises `StoreUnavailable`, which the API
answers UNAVAILABLE (part `eventStore`, retryable).

A timed-out append may still commit later (the write was sent; only the wait for its outcome is
given up): the retry of a command carrying an idempotency key is answered with the first outcome.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, Final, ParamSpec, Protocol, TypeVar

from eventstore.port import StoreUnavailable

DEFAULT_STORE_TIMEOUT: Final = 5.0
"""Seconds one store call may take (STORE_TIMEOUT's default)."""

P = ParamSpec("P")
T = TypeVar("T")


class HasDeadline(Protocol):
    """A store adapter: `call_timeout` is its STORE_TIMEOUT."""

    call_timeout: float


S = TypeVar("S", bound=HasDeadline)


def bounded(
    method: Callable[Concatenate[S, P], Awaitable[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """`method`, raising `StoreUnavailable` when it takes longer than its store's
    `call_timeout`."""

    async def within_deadline(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        limit = self.call_timeout
        try:
            async with asyncio.timeout(limit):
                return await method(self, *args, **kwargs)
        except TimeoutError:
            raise StoreUnavailable(
                f"the event store did not answer within {limit:g} s (STORE_TIMEOUT)"
            ) from None

    functools.update_wrapper(within_deadline, method)
    return within_deadline
