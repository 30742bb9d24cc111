"""Structured, quiet logging: one `key=value` line per record, INFO by default.

Per-request lines exist only at DEBUG (`LOG_LEVEL=DEBUG`): at hundreds of requests a second an
access log costs more than the requests' own work and drowns the lines that matter.
"""

from __future__ import annotations

import logging

FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


class _DropConnectionLines(logging.Filter):
    """Drops uvicorn's per-websocket lines ("WebSocket /graphql" [accepted], "connection open",
    "connection closed"): as chatty as an access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        return not (message.startswith('%s - "WebSocket %s"') or message.startswith("connection "))


def configure_logging(level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's) to stderr in one `key=value` format."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(level=numeric, format=FORMAT, force=True)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # Uvicorn's access log is per request: only when asked for.
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = True
    access.disabled = numeric > logging.DEBUG
    if numeric > logging.DEBUG:
        logging.getLogger("uvicorn.error").addFilter(_DropConnectionLines())
