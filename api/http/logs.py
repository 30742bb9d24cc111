"""Structured, quiet logging: one line per record (logfmt, or JSON with LOG_FORMAT=json; see
`api.http.log_format`), INFO by default.

Per-request lines exist only at DEBUG (`LOG_LEVEL=DEBUG`, `api.http.request_log`): at hundreds of
requests a second a request log costs more than the requests' own work and drowns the lines that
matter. uvicorn's access log stays off: the request log says more.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable

from api.http.log_format import LOG_FORMATS
from eventstore.outage_log import LibraryOutages


class _DropConnectionLines(logging.Filter):
    """Drops uvicorn's per-websocket lines ("WebSocket /graphql" [accepted], "connection open",
    "connection closed"): as chatty as an access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        return not (message.startswith('%s - "WebSocket %s"') or message.startswith("connection "))


REFUSALS_EVERY = 10.0
"""Seconds between two lines about connections refused past MAX_CONNECTIONS."""

_UVICORN_REFUSAL = "Exceeded concurrency limit."


class RefusalLog:
    """Connections refused past MAX_CONNECTIONS, logged at most once per `every` seconds with
    how many of each kind were refused since the last line: under a connection flood one line per
    refusal would itself be a flood."""

    def __init__(self, every: float = REFUSALS_EVERY, clock: Callable[[], float] = time.monotonic):
        self._every = every
        self._clock = clock
        self._last = -math.inf
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def refused(self, kind: str) -> None:
        """One connection of `kind` (http, websocket) was refused."""
        with self._lock:
            self._counts[kind] += 1
            now = self._clock()
            if now - self._last < self._every:
                return
            counts, self._counts = self._counts, Counter()
            self._last = now
        logging.getLogger(__name__).warning(
            "event=connections_refused reason=max_connections %s",
            " ".join(f"{name}={count}" for name, count in sorted(counts.items())),
        )


refusals = RefusalLog()
"""The process's refusal log (`api.http.protocol` reports websocket refusals to it)."""


class _CountRefusals(logging.Filter):
    """uvicorn's own line per refused HTTP request becomes a count in `refusals`."""

    def __init__(self, log: RefusalLog) -> None:
        super().__init__()
        self._log = log

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _UVICORN_REFUSAL:
            return True
        self._log.refused("http")
        return False


LIBRARIES = ("aiokafka", "asyncpg", "esdbclient", "grpc", "kafka")
"""Libraries whose loggers are folded: during an outage they repeat one warning per retry (a
Kafka broker away wrote over a thousand lines in 15 s); the outage log says it once."""
FOLD_EVERY = 10.0
"""Seconds during which a library's same message is let through once."""


class FoldLibraryRepeats(logging.Filter):
    """A library's repeated message (same logger, level and template) is let through once per
    `every` seconds; the next one that passes says how many were held back. Our own loggers are
    untouched: their outages already log once (`eventstore.outage_log`)."""

    def __init__(self, every: float = FOLD_EVERY, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(LIBRARIES) or record.levelno >= logging.CRITICAL:
            return True
        if record.name.split(".", 1)[0] not in LIBRARIES:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            last, held = self._seen.get(key, (-math.inf, 0))
            if now - last < self._every:
                self._seen[key] = (last, held + 1)
                return False
            self._seen[key] = (now, 0)
            if len(self._seen) > 1000:  # templates, not values: a bound that is never reached
                self._seen.clear()
        if held:
            record.msg = f"{record.msg} (repeated {held} more times in {self._every:g} s)"
        if record.exc_info and record.exc_info[1] is not None and record.levelno < logging.ERROR:
            # A library's warning about a retry: the error's name is enough, the outage log
            # tells the story; a traceback would be read as a bug.
            error = record.exc_info[1]
            record.msg = f"{record.msg} ({type(error).__name__}: {error})"
            record.exc_info = None
            record.exc_text = None
        return True


def configure_logging(level: str = "INFO", log_format: str = "logfmt") -> None:
    """Route every logger (ours, uvicorn's, the libraries') to one stderr handler writing
    `log_format` (`logfmt` or `json`)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    handler = logging.StreamHandler()
    handler.setFormatter(LOG_FORMATS.get(log_format, LOG_FORMATS["logfmt"])())
    # the outage rule first (a library's complaint about a part that is down is that part's
    # outage), then the repeats of whatever library lines remain
    handler.addFilter(LibraryOutages())
    handler.addFilter(FoldLibraryRepeats())
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # uvicorn's access line has no operation, duration or correlation id: the request log
    # (api.http.request_log) replaces it.
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = True
    access.disabled = True
    error = logging.getLogger("uvicorn.error")
    for old in [f for f in error.filters if isinstance(f, _DropConnectionLines | _CountRefusals)]:
        error.removeFilter(old)
    error.addFilter(_CountRefusals(refusals))
    if numeric > logging.DEBUG:
        error.addFilter(_DropConnectionLines())
