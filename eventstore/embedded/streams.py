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


_HEAD = (
    "SELECT version, tombstoned, (SELECT data FROM events WHERE stream = ? AND type = ? "
    "ORDER BY version DESC LIMIT 1) FROM streams WHERE name = ?"
)
"""A stream's row and its newest `$metadata` in one statement: loading a head is on the path of
every append and every stream read."""


def load_head(conn: sqlite3.Connection, stream: str) -> StreamHead:
    """The head of `stream`, with the read limits its metadata sets."""
    if is_metastream(stream):
        row = conn.execute(
            "SELECT version, tombstoned FROM streams WHERE name = ?", (stream,)
        ).fetchone()
        version, tombstoned = (row[0], bool(row[1])) if row else (0, False)
        return StreamHead(
            name=stream, version=version, tombstoned=tombstoned, max_count=METASTREAM_MAX_COUNT
        )
    row = conn.execute(_HEAD, (metastream_of(stream), METADATA_EVENT_TYPE, stream)).fetchone()
    if row is None:
        return StreamHead(name=stream, version=0, tombstoned=False)
    version, tombstoned, raw = row
    if raw is None or version == 0:
        return StreamHead(name=stream, version=version, tombstoned=bool(tombstoned))
    metadata = metadata_object(bytes(raw))
    return StreamHead(
        name=stream,
        version=version,
        tombstoned=bool(tombstoned),
        truncate_before=metadata_count(metadata.get(TRUNCATE_BEFORE)),
        max_count=metadata_count(metadata.get(MAX_COUNT)),
    )


def is_tombstoned(conn: sqlite3.Connection, head: StreamHead) -> bool:
    """Whether the stream of `head` (or, for a metastream, the stream it describes) was
    tombstoned."""
    if head.tombstoned:
        return True
    if not is_metastream(head.name):
        return False
    described = head.name[len(METASTREAM_PREFIX) :]
    row = conn.execute("SELECT tombstoned FROM streams WHERE name = ?", (described,)).fetchone()
    return bool(row and row[0])
