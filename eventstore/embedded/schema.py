"""The SQLite file's layout (its rows become the port's values in `eventstore.rows`).

One table holds the global log (`position` is the rowid, so it strictly increases in commit order);
a second holds each stream's head so expectations are checked without scanning events.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

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
"""The column list every event query selects, in the order `eventstore.rows.row_to_event`
expects."""


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
