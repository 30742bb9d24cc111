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

from eventstore.outage_log import OUTAGES as SHARED_OUTAGES
from eventstore.outage_log import QUIET_PERIOD
from eventstore.outage_log import OutageLog as PartOutages
from eventstore.port import StoreUnavailable, SubscriptionDropped
from projections.redis_pool import RedisBusy
from projections.views import ChangesMissed, ViewsUnavailable

logger = logging.getLogger(__name__)


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
    """The requests' view of the process's outage log (`eventstore.outage_log`, shared with the
    store's writer and the workers, so one outage is one line whoever met it), telling a busy
    pool (load) from an outage: a `RedisBusy` is logged as `event=redis_busy` at most once per
    QUIET_PERIOD, never as an outage."""

    def __init__(self, outages: PartOutages = SHARED_OUTAGES) -> None:
        self.outages = outages
        self._busy = RefusalCount()

    def failed(self, part: str, error: BaseException) -> None:
        """Note one failure of `part`; logs when it begins an outage."""
        if isinstance(error, RedisBusy):
            self._busy.note(error)
            return
        self.outages.failed(part, error)


class RefusalCount:
    """`event=redis_busy`, at most once per QUIET_PERIOD, with how many waits timed out in the
    previous period."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = -QUIET_PERIOD
        self._since = 0

    def note(self, error: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < QUIET_PERIOD:
                self._since += 1
                return
            suppressed, self._since, self._last = self._since, 0, now
        logger.warning("event=redis_busy error=%r busy_in_previous_period=%d", error, suppressed)


OUTAGES: Final[OutageLog] = OutageLog()
"""The process's outage log (requests of every schema report to it; `eventstore.outage_log`'s
OUTAGES is the one the layers below the API report to)."""


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
