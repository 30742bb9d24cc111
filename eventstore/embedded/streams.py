"""The stream rules of `eventstore.streams` over the SQLite tables: a stream's head, metadata and
tombstone as the embedded store loads them."""

from __future__ import annotations

import sqlite3
from typing import Any

from eventstore.streams import (
    MAX_COUNT,
    METADATA_EVENT_TYPE,
    METASTREAM_MAX_COUNT,
    METASTREAM_PREFIX,
    TRUNCATE_BEFORE,
    StreamHead,
    is_metastream,
    metadata_count,
    metadata_object,
    metastream_of,
)


def load_metadata(conn: sqlite3.Connection, stream: str) -> dict[str, Any]:
    """The newest `$metadata` of `stream`, empty when none was set."""
    row = conn.execute(
        "SELECT data FROM events WHERE stream = ? AND type = ? ORDER BY version DESC LIMIT 1",
        (metastream_of(stream), METADATA_EVENT_TYPE),
    ).fetchone()
    return metadata_object(bytes(row[0])) if row else {}


def load_head(conn: sqlite3.Connection, stream: str) -> StreamHead:
    """The head of `stream`, with the read limits its metadata sets."""
    row = conn.execute(
        "SELECT version, tombstoned FROM streams WHERE name = ?", (stream,)
    ).fetchone()
    version, tombstoned = (row[0], bool(row[1])) if row else (0, False)
    if is_metastream(stream):
        return StreamHead(
            name=stream, version=version, tombstoned=tombstoned, max_count=METASTREAM_MAX_COUNT
        )
    metadata = load_metadata(conn, stream) if version > 0 else {}
    return StreamHead(
        name=stream,
        version=version,
        tombstoned=tombstoned,
        truncate_before=metadata_count(metadata.get(TRUNCATE_BEFORE)),
        max_count=metadata_count(metadata.get(MAX_COUNT)),
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
