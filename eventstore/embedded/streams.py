"""A stream's head and metadata as the log records them, and what they make readable.

Metadata lives in the log as EventStoreDB keeps it: `$metadata` events in the stream `$$<name>`,
the newest one wins. `$tb` and `$maxCount` only hide events from stream reads; the global log keeps
everything.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

logger = logging.getLogger(__name__)

METASTREAM_PREFIX = "$$"
METADATA_EVENT_TYPE = "$metadata"
TOMBSTONE_EVENT_TYPE = "$streamDeleted"
MAX_COUNT = "$maxCount"
TRUNCATE_BEFORE = "$tb"
# EventStoreDB keeps only the newest event of a metastream.
_METASTREAM_MAX_COUNT = 1


def metastream_of(stream: str) -> str:
    """The stream holding `stream`'s metadata."""
    return f"{METASTREAM_PREFIX}{stream}"


def is_metastream(stream: str) -> bool:
    """Whether `stream` holds another stream's metadata."""
    return stream.startswith(METASTREAM_PREFIX)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamHead:
    """Where a stream is: its raw version (events ever appended), tombstone, and read limits.

    `truncate_before` is an EventStoreDB revision (version - 1), exactly as `$tb` is written, so
    the same metadata means the same thing on both adapters: events with version <= it are hidden.
    """

    name: str
    version: int
    tombstoned: bool
    truncate_before: int | None = None
    max_count: int | None = None

    @property
    def soft_deleted(self) -> bool:
        """Every event is hidden by `$tb` (what a soft delete leaves)."""
        return (
            self.version > 0
            and self.truncate_before is not None
            and self.truncate_before >= self.version
        )

    @property
    def exists(self) -> bool:
        """Whether the stream exists for expectations and reads."""
        return self.version > 0 and not self.soft_deleted

    @property
    def first_readable(self) -> int:
        """The oldest version stream reads may return."""
        first = 1
        if self.max_count is not None:
            first = max(first, self.version - self.max_count + 1)
        if self.truncate_before is not None:
            first = max(first, self.truncate_before + 1)
        return first


def _load_json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        logger.warning("event=stream_metadata_not_json")
        return {}
    return value if isinstance(value, dict) else {}


def load_metadata(conn: sqlite3.Connection, stream: str) -> dict[str, Any]:
    """The newest `$metadata` of `stream`, empty when none was set."""
    row = conn.execute(
        "SELECT data FROM events WHERE stream = ? AND type = ? ORDER BY version DESC LIMIT 1",
        (metastream_of(stream), METADATA_EVENT_TYPE),
    ).fetchone()
    return _load_json_object(bytes(row[0])) if row else {}


def _non_negative_int(value: object) -> int | None:
    # bool is an int in Python but never a count in JSON metadata.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def load_head(conn: sqlite3.Connection, stream: str) -> StreamHead:
    """The head of `stream`, with the read limits its metadata sets."""
    row = conn.execute(
        "SELECT version, tombstoned FROM streams WHERE name = ?", (stream,)
    ).fetchone()
    version, tombstoned = (row[0], bool(row[1])) if row else (0, False)
    if is_metastream(stream):
        return StreamHead(
            name=stream, version=version, tombstoned=tombstoned, max_count=_METASTREAM_MAX_COUNT
        )
    metadata = load_metadata(conn, stream) if version > 0 else {}
    return StreamHead(
        name=stream,
        version=version,
        tombstoned=tombstoned,
        truncate_before=_non_negative_int(metadata.get(TRUNCATE_BEFORE)),
        max_count=_non_negative_int(metadata.get(MAX_COUNT)),
    )


def is_tombstoned(conn: sqlite3.Connection, stream: str) -> bool:
    """Whether `stream` (or, for a metastream, the stream it describes) was tombstoned."""
    names = [stream]
    if is_metastream(stream):
        names.append(stream[len(METASTREAM_PREFIX) :])
    for name in names:
        row = conn.execute("SELECT tombstoned FROM streams WHERE name = ?", (name,)).fetchone()
        if row and row[0]:
            return True
    return False
