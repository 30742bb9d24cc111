"""The SQLite file's layout and the conversions between its rows and the port's values.

One table holds the global log (`position` is the rowid, so it strictly increases in commit order);
a second holds each stream's head so expectations are checked without scanning events.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eventstore.port import RecordedEvent

DB_FILE_NAME = "events.sqlite3"

_DDL = """
CREATE TABLE IF NOT EXISTS events (
    position     INTEGER PRIMARY KEY,
    id           BLOB    NOT NULL,
    stream       TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    type         TEXT    NOT NULL,
    data         BLOB    NOT NULL,
    metadata     BLOB    NOT NULL,
    content_type TEXT    NOT NULL,
    recorded_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream ON events (stream, version);
CREATE INDEX IF NOT EXISTS events_by_id ON events (id);
CREATE TABLE IF NOT EXISTS streams (
    name       TEXT    PRIMARY KEY,
    version    INTEGER NOT NULL,
    tombstoned INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""

EVENT_COLUMNS = "position, id, stream, version, type, data, metadata, content_type, recorded_at"
"""The column list every event query selects, in the order `row_to_event` expects."""


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, synchronous=FULL.

    FULL, not NORMAL: with NORMAL a power loss may drop commits already acknowledged to clients.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables and indexes when missing."""
    conn.executescript(_DDL)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """A UTC timestamp as integer microseconds since the epoch (exact, sortable)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The inverse of `to_micros` (integer arithmetic throughout: exact, and no float rounding)."""
    return _EPOCH + timedelta(microseconds=micros)


_new_uuid = object.__new__
_set_attribute = object.__setattr__


def uuid_from_bytes(raw: bytes) -> uuid.UUID:
    """`uuid.UUID(bytes=raw)` for the 16 bytes the store wrote from a `UUID`, without the
    constructor's argument checks, which cost more than the rest of decoding a row. The result is
    an ordinary `UUID` (same `int`, equality, hash and text), built the way `uuid` itself
    unpickles one."""
    if len(raw) != 16:
        raise ValueError(f"an event id is 16 bytes, got {len(raw)}")
    value = _new_uuid(uuid.UUID)
    _set_attribute(value, "int", int.from_bytes(raw, "big"))
    _set_attribute(value, "is_safe", uuid.SafeUUID.unknown)
    return value


# `RecordedEvent` is a frozen dataclass: its generated __init__ sets every field through
# `object.__setattr__`, which was half the cost of turning a row into an event. Rows are built
# here by setting its slots directly, the way `copy` and `pickle` rebuild one; the fields are
# checked below so a field added to the port cannot be silently left unset.
_EVENT_FIELDS = (
    "id",
    "stream",
    "type",
    "version",
    "position",
    "data",
    "metadata",
    "recorded_at",
    "content_type",
    "retry_count",
    "ack_id",
    "link",
)
if tuple(f.name for f in dataclasses.fields(RecordedEvent)) != _EVENT_FIELDS:  # pragma: no cover
    raise ImportError("RecordedEvent's fields changed: update eventstore.embedded.schema")
(
    _set_id,
    _set_stream,
    _set_type,
    _set_version,
    _set_position,
    _set_data,
    _set_metadata,
    _set_recorded_at,
    _set_content_type,
    _set_retry_count,
    _set_ack_id,
    _set_link,
) = (getattr(RecordedEvent, name).__set__ for name in _EVENT_FIELDS)
_UUID = uuid.UUID
_UUID_UNKNOWN = uuid.SafeUUID.unknown
_from_bytes = int.from_bytes


def row_to_event(row: tuple[Any, ...]) -> RecordedEvent:
    """A row selected with `EVENT_COLUMNS` as the port's `RecordedEvent` (equal to the one its
    constructor would build; see the comment above on how)."""
    position, raw_id, stream, version, type_, data, metadata, content_type, recorded_at = row
    if len(raw_id) != 16:
        raise ValueError(f"an event id is 16 bytes, got {len(raw_id)}")
    event_id = _new_uuid(_UUID)
    _set_attribute(event_id, "int", _from_bytes(raw_id, "big"))
    _set_attribute(event_id, "is_safe", _UUID_UNKNOWN)
    event = _new_uuid(RecordedEvent)
    _set_id(event, event_id)
    _set_stream(event, stream)
    _set_type(event, type_)
    _set_version(event, version)
    _set_position(event, position)
    _set_data(event, data)
    _set_metadata(event, metadata)
    _set_recorded_at(event, _EPOCH + timedelta(microseconds=recorded_at))
    _set_content_type(event, content_type)
    _set_retry_count(event, 0)
    _set_ack_id(event, None)
    _set_link(event, None)
    return event
