"""The read queries, each run inside one read transaction (see `pool.ReaderPool`)."""

from __future__ import annotations

import sqlite3
from functools import partial
from typing import Any

from eventstore.embedded.schema import EVENT_COLUMNS
from eventstore.embedded.streams import load_head, load_metadata
from eventstore.marked import read_marked
from eventstore.port import EventFilter, MarkedRead, RecordedEvent, StreamDeleted
from eventstore.rows import row_to_event

# EventStoreDB never shows these in `$all`, even to readers asking for system events.
_HIDDEN_STREAMS = (
    "NOT (stream GLOB '$persistentsubscription-*-parked'"
    " OR stream GLOB '$persistentsubscription-*-checkpoint')"
)

_NOT_SYSTEM_TYPE = "substr(type, 1, 1) <> '$'"
_NOT_SYSTEM_STREAM = "substr(stream, 1, 1) <> '$'"


def _limit(limit: int | None) -> int:
    # SQLite reads a negative LIMIT as "no limit".
    return -1 if limit is None else max(limit, 0)


def read_stream(
    conn: sqlite3.Connection,
    stream: str,
    *,
    from_version: int | None = None,
    backwards: bool = False,
    limit: int | None = None,
) -> list[RecordedEvent]:
    """Readable events of `stream` from `from_version` (inclusive). Missing stream: []."""
    head = load_head(conn, stream)
    if head.tombstoned:
        raise StreamDeleted(stream)
    first = head.first_readable
    if backwards:
        start = head.version if from_version is None else min(from_version, head.version)
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE stream = ? AND version <= ? "
            "AND version >= ? ORDER BY version DESC LIMIT ?"
        )
        params: tuple[Any, ...] = (stream, start, first, _limit(limit))
    else:
        start = first if from_version is None else max(from_version, first)
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE stream = ? AND version >= ? "
            "AND version <= ? ORDER BY version LIMIT ?"
        )
        params = (stream, start, head.version, _limit(limit))
    return [row_to_event(row) for row in conn.execute(sql, params)]


def read_from_mark(
    conn: sqlite3.Connection, mark_stream: str, stream: str, *, limit: int
) -> MarkedRead:
    """The newest readable event of `mark_stream` and up to `limit` events of `stream` from the
    version it names, in one read transaction (see `MarkedReads`)."""
    return read_marked(partial(read_stream, conn), mark_stream, stream, limit=limit)


def _filter_sql(selection: EventFilter) -> tuple[list[str], list[Any]]:
    # Under prefixes that do not start with '$' every stream is a user stream, neither hidden nor
    # a system stream: those checks, implied, are not made row by row (a catch-up reads the
    # order streams' events this way, a fifth faster).
    user_streams = bool(selection.stream_prefixes) and all(
        prefix and not prefix.startswith("$") for prefix in selection.stream_prefixes
    )
    clauses = [] if user_streams else [_HIDDEN_STREAMS]
    params: list[Any] = []
    if not selection.include_system:
        clauses.append(_NOT_SYSTEM_TYPE)
        if not user_streams:
            clauses.append(_NOT_SYSTEM_STREAM)
    if selection.event_types:
        clauses.append(f"type IN ({','.join('?' * len(selection.event_types))})")
        params.extend(selection.event_types)
    if selection.stream_prefixes:
        clauses.append(
            "(" + " OR ".join("substr(stream, 1, ?) = ?" for _ in selection.stream_prefixes) + ")"
        )
        for prefix in selection.stream_prefixes:
            params.extend((len(prefix), prefix))
    return clauses, params


def read_all(
    conn: sqlite3.Connection,
    *,
    from_position: int | None = None,
    backwards: bool = False,
    limit: int | None = None,
    filter: EventFilter | None = None,
) -> list[RecordedEvent]:
    """Events of the global log from `from_position` (inclusive) that `filter` selects."""
    clauses, params = _filter_sql(filter or EventFilter())
    if from_position is not None:
        clauses.append("position <= ?" if backwards else "position >= ?")
        params.append(from_position)
    order = "DESC" if backwards else "ASC"
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(clauses)} "
        f"ORDER BY position {order} LIMIT ?"
    )
    params.append(_limit(limit))
    return [row_to_event(row) for row in conn.execute(sql, params)]


def head_position(conn: sqlite3.Connection) -> int:
    """The position of the newest event in the log, 0 when empty."""
    row = conn.execute("SELECT MAX(position) FROM events").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def scan_all(
    conn: sqlite3.Connection, *, after: int, limit: int, filter: EventFilter
) -> tuple[list[RecordedEvent], int]:
    """The next page after `after` and how far the scan got, so filtered-out stretches of the log
    are not scanned twice."""
    page = read_all(conn, from_position=after + 1, limit=limit, filter=filter)
    if len(page) == limit:
        return page, page[-1].position
    return page, max(after, head_position(conn))


def stream_metadata(conn: sqlite3.Connection, stream: str) -> dict[str, Any]:
    """The stream's metadata; reading a tombstoned stream's metadata raises `StreamDeleted`."""
    if load_head(conn, stream).tombstoned:
        raise StreamDeleted(stream)
    return load_metadata(conn, stream)
