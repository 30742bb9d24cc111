"""Outages, told apart from bugs and from load: which exceptions mean "a part is down, retry
later", and which "a part is busy, retry later".

The schema's error masking asks `unavailable_of` about every unexpected error: an outage becomes
the retryable `Unavailable` error (code UNAVAILABLE) instead of INTERNAL_SERVER_ERROR, and is
logged once per outage by `OutageLog` instead of a traceback per request. A Redis pool that
stayed full for the whole wait (`RedisBusy`) is answered UNAVAILABLE too, but it is load, not an
outage: it is logged as `event=redis_busy`, at most once per QUIET_PERIOD, never as an outage.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

from graphql import GraphQLError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from eventstore.port import StoreUnavailable, SubscriptionDropped
from projections.redis_pool import RedisBusy
from projections.views import ChangesMissed, ViewsUnavailable

logger = logging.getLogger(__name__)

QUIET_PERIOD: Final = 10.0
"""An outage counts as over when a part has not failed for this long; the next failure is logged
as a new outage."""


class Unavailable(GraphQLError):
    """A part the answer needs (the event store, Redis, views being rebuilt after a loss, a full
    connection pool) is not available now. Retryable: `retryAfter` says in how many seconds to
    try again. Never masked, and never answered with a partial or empty result instead."""

    def __init__(self, message: str, *, part: str, retry_after: int = 1) -> None:
        super().__init__(
            message,
            extensions={"code": "UNAVAILABLE", "part": part, "retryAfter": retry_after},
        )


def outage_part(error: BaseException) -> str | None:
    """The part an exception says is down ("eventStore", "redis", "views", "liveFeed"), None
    for a bug."""
    if isinstance(error, ViewsUnavailable):
        return "views"
    if isinstance(error, ChangesMissed):
        return "liveFeed"
    if isinstance(error, StoreUnavailable | SubscriptionDropped):
        return "eventStore"
    # redis-py's ConnectionError covers a refused or lost connection and a server still loading;
    # a pool that stayed full is RedisBusy (load). All pass, none is the caller's bug.
    if isinstance(error, RedisConnectionError | RedisTimeoutError | RedisBusy):
        return "redis"
    return None


def retry_after(part: str) -> int:
    """Seconds a client should wait before retrying, by part."""
    return 2 if part == "eventStore" else 1


class OutageLog:
    """One warning when a part starts failing, then silence until it has been quiet for
    QUIET_PERIOD; the number of failures in between is in the next warning."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_failure: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def failed(self, part: str, error: BaseException) -> None:
        """Note one failure of `part`; logs when it begins an outage. A busy pool is no outage:
        it is logged (quietly) as `event=redis_busy` instead."""
        if isinstance(error, RedisBusy):
            part, busy = "redis_busy", True
        else:
            busy = False
        now = time.monotonic()
        with self._lock:
            last = self._last_failure.get(part)
            self._last_failure[part] = now
            if last is not None and now - last < QUIET_PERIOD:
                self._suppressed[part] = self._suppressed.get(part, 0) + 1
                return
            suppressed = self._suppressed.pop(part, 0)
        if busy:
            logger.warning(
                "event=redis_busy error=%r busy_in_previous_period=%d", error, suppressed
            )
            return
        logger.warning(
            "event=outage part=%s error=%r failures_in_previous_outage=%d", part, error, suppressed
        )


OUTAGES = OutageLog()
"""The process's outage log (requests of every schema report to it)."""


def unavailable_of(error: GraphQLError) -> Unavailable | None:
    """The client's Unavailable error for an error caused by an outage, else None."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return None
    part = outage_part(original)
    if part is None:
        return None
    unavailable = Unavailable(
        _BUSY if isinstance(original, RedisBusy) else _MESSAGES[part],
        part=part,
        retry_after=retry_after(part),
    )
    unavailable.path = error.path
    unavailable.locations = error.locations
    return unavailable


_BUSY: Final = "The read model store is busy; retry shortly."
_MESSAGES: Final = {
    "eventStore": "The event store is not available now; retry shortly.",
    "redis": "The read model store is not available now; retry shortly.",
    "views": "The read model is being rebuilt after a loss; retry shortly.",
    "liveFeed": "Live changes were missed; re-query, then subscribe again.",
}
