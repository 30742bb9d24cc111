"""The writes the group-commit writer runs inside its transaction: append, delete, tombstone.

Each runs in its own savepoint; raising rolls back that operation only. Expectations are checked
against the state left by the operations committed before it in the same batch.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence

import orjson

from eventstore.embedded.streams import is_tombstoned, load_head, load_metadata
from eventstore.port import (
    ANY,
    EXISTS,
    NO_STREAM,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    StreamDeleted,
    WrongExpectedVersion,
)
from eventstore.streams import (
    METADATA_EVENT_TYPE,
    TOMBSTONE_EVENT_TYPE,
    TRUNCATE_BEFORE,
    StreamHead,
    metastream_of,
)


def _retry_of(
    conn: sqlite3.Connection, stream: str, base: int, events: Sequence[NewEvent]
) -> AppendResult | None:
    """The original result when `events` already sit at versions base+1..base+n, else None."""
    rows = conn.execute(
        "SELECT id, position FROM events WHERE stream = ? AND version > ? AND version <= ? "
        "ORDER BY version",
        (stream, base, base + len(events)),
    ).fetchall()
    if len(rows) != len(events) or any(
        bytes(row[0]) != event.id.bytes for row, event in zip(rows, events, strict=True)
    ):
        return None
    return AppendResult(version=base + len(events), position=rows[-1][1])


def _ids_already_in(
    conn: sqlite3.Connection, stream: str, events: Sequence[NewEvent]
) -> AppendResult | None:
    """Best-effort idempotence for ANY/EXISTS: every id is in the stream already."""
    ids = {event.id.bytes for event in events}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT id, version, position FROM events WHERE stream = ? AND id IN ({marks})",
        (stream, *ids),
    ).fetchall()
    found = {bytes(row[0]): (row[1], row[2]) for row in rows}
    if len(found) != len(ids):
        return None
    version, position = found[events[-1].id.bytes]
    return AppendResult(version=version, position=position)


def check_expected(
    conn: sqlite3.Connection,
    head: StreamHead,
    expected: ExpectedVersion,
    events: Sequence[NewEvent],
) -> AppendResult | None:
    """None when the write may go ahead; the original result for a retry; else raises
    `WrongExpectedVersion` carrying the stream's version (None when it does not exist)."""
    actual = head.version if head.exists else None
    if isinstance(expected, int):
        if expected < 1:
            raise ValueError(f"an exact expected version is >= 1, got {expected}")
        if head.version == expected:
            return None
        if head.version > expected and events:
            original = _retry_of(conn, head.name, expected, events)
            if original is not None:
                return original
        raise WrongExpectedVersion(head.name, expected, actual)
    if expected is NO_STREAM:
        if not head.exists:
            return None
        if events:
            # A stream re-created after a soft delete started numbering after `$tb`.
            bases = {0, min(head.truncate_before or 0, head.version)}
            for base in sorted(bases):
                original = _retry_of(conn, head.name, base, events)
                if original is not None:
                    return original
        raise WrongExpectedVersion(head.name, expected, actual)
    if events and head.version > 0:
        original = _ids_already_in(conn, head.name, events)
        if original is not None:
            return original
    if expected is EXISTS and not head.exists:
        raise WrongExpectedVersion(head.name, expected, None)
    return None


_INSERT = (
    "INSERT INTO events (id, stream, version, type, data, metadata, content_type, recorded_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _insert(
    conn: sqlite3.Connection,
    stream: str,
    first_version: int,
    events: Sequence[NewEvent],
    recorded_at: int,
) -> int:
    """Insert `events` from `first_version` on; the last one's position."""
    rows = [
        (
            event.id.bytes,
            stream,
            first_version + index,
            event.type,
            event.data,
            event.metadata,
            event.content_type,
            recorded_at,
        )
        for index, event in enumerate(events)
    ]
    if len(rows) == 1:
        # Most appends carry one event: the cursor knows its rowid without another statement.
        position = conn.execute(_INSERT, rows[0]).lastrowid
        assert position is not None  # an INSERT that returned sets it
        return position
    conn.executemany(_INSERT, rows)
    last: int = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    return last


def _set_head(conn: sqlite3.Connection, stream: str, version: int, tombstoned: bool) -> None:
    conn.execute(
        "INSERT INTO streams (name, version, tombstoned) VALUES (?, ?, ?) ON CONFLICT (name) "
        "DO UPDATE SET version = excluded.version, tombstoned = excluded.tombstoned",
        (stream, version, int(tombstoned)),
    )


def _stream_position(conn: sqlite3.Connection, stream: str, version: int) -> int:
    row = conn.execute(
        "SELECT position FROM events WHERE stream = ? AND version = ?", (stream, version)
    ).fetchone()
    return int(row[0]) if row else 0


def append(
    conn: sqlite3.Connection,
    recorded_at: int,
    stream: str,
    events: Sequence[NewEvent],
    expected: ExpectedVersion,
) -> AppendResult:
    """Append `events` to `stream` if `expected` holds (see `check_expected`)."""
    head = load_head(conn, stream)
    if is_tombstoned(conn, head):
        raise StreamDeleted(stream)
    original = check_expected(conn, head, expected, events)
    if original is not None:
        return original
    if not events:
        return AppendResult(
            version=head.version, position=_stream_position(conn, stream, head.version)
        )
    position = _insert(conn, stream, head.version + 1, events, recorded_at)
    _set_head(conn, stream, head.version + len(events), tombstoned=False)
    return AppendResult(version=head.version + len(events), position=position)


def delete(
    conn: sqlite3.Connection,
    recorded_at: int,
    stream: str,
    expected: ExpectedVersion,
    event_id: uuid.UUID,
) -> None:
    """Soft delete: `$tb` = the next revision, so every event so far is hidden from stream reads
    and appending again (NO_STREAM or the old version) resumes the numbering."""
    head = load_head(conn, stream)
    if is_tombstoned(conn, head):
        raise StreamDeleted(stream)
    if head.version == 0:
        # EventStoreDB refuses to soft-delete a stream that never existed, whatever the
        # expectation (the client sees "Actual version: -1").
        raise WrongExpectedVersion(stream, expected, None)
    check_expected(conn, head, expected, ())
    metadata = {**load_metadata(conn, stream), TRUNCATE_BEFORE: head.version}
    stamped = NewEvent(id=event_id, type=METADATA_EVENT_TYPE, data=orjson.dumps(metadata))
    append(conn, recorded_at, metastream_of(stream), [stamped], ANY)


def tombstone(
    conn: sqlite3.Connection,
    recorded_at: int,
    stream: str,
    expected: ExpectedVersion,
    event_id: uuid.UUID,
) -> None:
    """Hard delete: a `$streamDeleted` event after the last one; every later use raises."""
    head = load_head(conn, stream)
    if is_tombstoned(conn, head):
        raise StreamDeleted(stream)
    check_expected(conn, head, expected, ())
    marker = NewEvent(
        id=event_id,
        type=TOMBSTONE_EVENT_TYPE,
        data=b"",
        metadata=b"",
        content_type="application/octet-stream",
    )
    _insert(conn, stream, head.version + 1, [marker], recorded_at)
    _set_head(conn, stream, head.version, tombstoned=True)


def probe_write(conn: sqlite3.Connection, recorded_at: int) -> None:
    """A real, tiny durable write (one row, replaced each time) that proves the write path works:
    the health check's probe. Outside the event tables, so the log is untouched."""
    conn.execute("CREATE TABLE IF NOT EXISTS write_probe (id INTEGER PRIMARY KEY, at INTEGER)")
    conn.execute("INSERT OR REPLACE INTO write_probe (id, at) VALUES (1, ?)", (recorded_at,))
