"""One log line per outage per part, and one when it is over with how many failures it held.

Every layer reports to it: the API when a request meets a part that is down, the store's writer
when a commit fails, the processes while they wait for a dependency at start. During an outage
of a few seconds under load, a line per failed request or commit would be thousands of lines
(and tracebacks) that all say the same thing; an operator needs when it began, what it was, when
it ended and how much it cost.

It lives in the lowest package (the event store's) so that the store adapters, the projections,
the relay and the API can all share one instance per process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

QUIET_PERIOD: Final = 10.0
"""An outage counts as over when its part has not failed for this long (or as soon as a caller
says it recovered)."""

_logger = logging.getLogger("outages")


@dataclass(slots=True)
class _Outage:
    started: float
    last: float
    failures: int
    error: str


class OutageLog:
    """Per part: a warning when it starts failing (`event=outage part=... error=...`), silence
    while it keeps failing, and one line when it is over (`event=outage_over part=...
    failures=N lasted_s=...`): at `recovered(part)`, or once it has been quiet for
    `quiet_period` (checked on the running event loop, else at the part's next failure)."""

    def __init__(
        self,
        *,
        quiet_period: float = QUIET_PERIOD,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = _logger,
    ) -> None:
        self._quiet = quiet_period
        self._clock = clock
        self._logger = logger
        self._lock = threading.Lock()
        self._open: dict[str, _Outage] = {}

    def failed(self, part: str, error: BaseException | str, **fields: object) -> bool:
        """Note one failure of `part`; True (and a line) when it begins an outage. `fields`
        go on that line (e.g. a hint of what to change)."""
        now = self._clock()
        with self._lock:
            outage = self._open.get(part)
            if outage is not None and now - outage.last >= self._quiet:
                self._close(part, outage, outage.last)
                outage = None
            if outage is not None:
                outage.last = now
                outage.failures += 1
                return False
            self._open[part] = _Outage(started=now, last=now, failures=1, error=_text(error))
        template = "event=outage part=%s error=%s" + "".join(f" {key}=%s" for key in fields)
        self._logger.warning(template, part, _text(error), *fields.values())
        self._watch(part)
        return True

    def absorbed(self, part: str) -> bool:
        """A library's complaint about `part` while its outage is open: counted into the
        outage (it is still failing) instead of logged; False when no outage is open."""
        with self._lock:
            outage = self._open.get(part)
            if outage is None or self._clock() - outage.last >= self._quiet:
                return False
            outage.last = self._clock()
            outage.failures += 1
            return True

    def recovered(self, part: str) -> None:
        """`part` answered again: its outage (if one is open) is over now."""
        with self._lock:
            outage = self._open.get(part)
            if outage is not None:
                self._close(part, outage, self._clock())

    def error_of(self, part: str) -> str | None:
        """The error that began the open outage of `part` (None: none is open)."""
        with self._lock:
            outage = self._open.get(part)
            return None if outage is None else outage.error

    def is_out(self, part: str) -> bool:
        """Whether an outage of `part` is open (it failed within the quiet period)."""
        with self._lock:
            outage = self._open.get(part)
            return outage is not None and self._clock() - outage.last < self._quiet

    def _close(self, part: str, outage: _Outage, ended: float) -> None:
        del self._open[part]
        self._logger.info(
            "event=outage_over part=%s failures=%d lasted_s=%.1f",
            part,
            outage.failures,
            max(0.0, ended - outage.started),
        )

    def _watch(self, part: str) -> None:
        """Close the outage once it has been quiet long enough, on the running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a thread of its own: the next failure or `recovered` closes it
        loop.call_later(self._quiet, self._check_quiet, part, loop)

    def _check_quiet(self, part: str, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            outage = self._open.get(part)
            if outage is None:
                return
            quiet_for = self._clock() - outage.last
            if quiet_for >= self._quiet:
                self._close(part, outage, outage.last)
                return
        loop.call_later(self._quiet - quiet_for, self._check_quiet, part, loop)


LIBRARY_PARTS: Final = {"aiokafka": "kafka", "kafka": "kafka"}
"""Libraries whose warnings open (and then count into) their part's outage: the Kafka client
retries a broker that is away every 100 ms with a line each time (1,175 lines in 15 s), and the
relay itself only meets the outage when a delivery times out, up to KAFKA_REQUEST_TIMEOUT_MS
later. Its first complaint is the outage's one line."""
FOLDED_LIBRARIES: Final = {
    "asyncpg": "eventStore",
    "esdbclient": "eventStore",
    "grpc": "eventStore",
}
"""Libraries whose warnings are counted into their part's outage while one is open (the store
adapters report their outages themselves, at the first failed call), and otherwise pass."""

REPORTED_BY_CALLERS: Final = frozenset({"Unexpected error during InitProducerIdRequest: %s"})
"""Library lines dropped because the caller reports the failure better: the relay names the
setting to change when the broker refuses the idempotent producer (`relay.publisher`)."""


class LibraryOutages(logging.Filter):
    """A handler filter folding library loggers into the outage rule: one line per outage per
    part, whoever meets it first. CRITICAL lines always pass, as do lines below WARNING (they
    only show at DEBUG, where an operator asked for them)."""

    def __init__(self, outages: OutageLog | None = None) -> None:
        super().__init__()
        self._outages = outages or OUTAGES

    def filter(self, record: logging.LogRecord) -> bool:
        if not logging.WARNING <= record.levelno < logging.CRITICAL:
            return True
        orphaned = _orphaned_pool_release(record)
        if orphaned is not None:
            # asyncpg returns a connection to its pool in a shielded task: when the caller was
            # cancelled meanwhile (a deadline, a stopping subscriber) and the server had just
            # ended the connection, asyncio reports the task's error with a traceback
            self._outages.failed("eventStore", orphaned)
            return False
        library = record.name.split(".", 1)[0]
        part = LIBRARY_PARTS.get(library) or FOLDED_LIBRARIES.get(library)
        if part is None:
            return True
        if self._outages.absorbed(part) or record.msg in REPORTED_BY_CALLERS:
            return False
        if library not in LIBRARY_PARTS:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        self._outages.failed(part, f"{library}: {message}")
        return False


def _orphaned_pool_release(record: logging.LogRecord) -> BaseException | None:
    """The error of asyncio's "Task exception was never retrieved" for asyncpg's pool release
    that met a connection the server ended (a PostgreSQL restart): an outage, not a bug."""
    if record.name != "asyncio" or not record.exc_info or record.exc_info[1] is None:
        return None
    error = record.exc_info[1]
    if not any(k.__module__.startswith("asyncpg") for k in type(error).__mro__):
        return None
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = str(record.msg)
    return error if "PoolConnectionHolder.release" in message else None


def _text(error: BaseException | str) -> str:
    """The error's type (and its cause's, e.g. asyncpg's TooManyConnectionsError behind a
    StoreUnavailable) and message."""
    if isinstance(error, str):
        return error
    cause = error.__cause__
    kind = type(error).__name__ + (f" ({type(cause).__name__})" if cause is not None else "")
    return f"{kind}: {error}"


OUTAGES = OutageLog()
"""The process's outage log."""
