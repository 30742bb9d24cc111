"""A stream's head and metadata as the log records them, and what they make readable: the rules
every store of the log keeps (the SQL stores load heads their own way).

Metadata lives in the log as EventStoreDB keeps it: `$metadata` events in the stream `$$<name>`,
the newest one wins. `$tb` and `$maxCount` only hide events from stream reads; the global log keeps
everything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

logger = logging.getLogger(__name__)

METASTREAM_PREFIX = "$$"
METADATA_EVENT_TYPE = "$metadata"
TOMBSTONE_EVENT_TYPE = "$streamDeleted"
MAX_COUNT = "$maxCount"
TRUNCATE_BEFORE = "$tb"
METASTREAM_MAX_COUNT = 1
"""EventStoreDB keeps only the newest event of a metastream."""


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
            # No version lies past the head: clamped, EventStoreDB's "deleted" `$tb`
            # (long.MaxValue) stays a valid SQL integer.
            first = max(first, min(self.truncate_before, self.version) + 1)
        return first


def metadata_object(raw: bytes) -> dict[str, Any]:
    """Stored metadata as an object: empty when it is empty or not a JSON object."""
    try:
        value = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        logger.warning("event=stream_metadata_not_json")
        return {}
    return value if isinstance(value, dict) else {}


def metadata_count(value: object) -> int | None:
    """A `$tb` or `$maxCount` value as a count; None when it is not one (bool is an int in
    Python but never a count in JSON metadata)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
