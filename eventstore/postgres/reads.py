"""The read queries. Rows are selected in the shape `eventstore.rows.row_to_event`
decodes (the id's 16 bytes, the time in UTC microseconds), so both stores share that fast path."""

from __future__ import annotations

from typing import Any

import orjson

from eventstore.port import EventFilter, RecordedEvent, StreamDeleted
from eventstore.rows import row_to_event
from eventstore.streams import METADATA_EVENT_TYPE, StreamHead, metastream_of

EVENT_COLUMNS = (
    "position, uuid_send(id), stream, version, type, data, metadata, content_type,"
    " (extract(epoch FROM recorded_at) * 1000000)::int8"
)

# EventStoreDB never shows these in `$all`, even to readers asking for system events.
_HIDDEN_STREAMS = (
    "NOT (stream LIKE '$persistentsubscription-%-parked'"
    " OR stream LIKE '$persistentsubscription-%-checkpoint')"
)
_NOT_SYSTEM = "left(type, 1) <> '$' AND left(stream, 1) <> '$'"


async def load_head(conn: Any, stream: str) -> StreamHead:
    """The head of `stream` with the read limits its metadata sets (one round trip)."""
    row = await conn.fetchrow(
        "SELECT version, tombstoned, truncate_before, max_count FROM es_head($1)", stream
    )
    return StreamHead(
        name=stream,
        version=row[0],
        tombstoned=row[1],
        truncate_before=row[2],
        max_count=row[3],
    )


async def read_stream(
    conn: Any,
    stream: str,
    *,
    from_version: int | None = None,
    backwards: bool = False,
    limit: int | None = None,
) -> list[RecordedEvent]:
    """Readable events of `stream` from `from_version` (inclusive). Missing stream: [].
    One round trip: `es_read_stream` applies the head's limits itself."""
    rows = await conn.fetch(
        "SELECT * FROM es_read_stream($1, $2, $3, $4)",
        stream,
        from_version,
        backwards,
        None if limit is None else max(limit, 0),
    )
    if rows and rows[0][0]:
        raise StreamDeleted(stream)
    return [row_to_event(tuple(row)[1:]) for row in rows if row[1] is not None]


def _filter_sql(selection: EventFilter, params: list[Any]) -> list[str]:
    clauses = [_HIDDEN_STREAMS]
    if not selection.include_system:
        clauses.append(_NOT_SYSTEM)
    if selection.event_types:
        params.append(list(selection.event_types))
        clauses.append(f"type = ANY (${len(params)}::text[])")
    if selection.stream_prefixes:
        ors = []
        for prefix in selection.stream_prefixes:
            params.append(prefix)
            ors.append(f"starts_with(stream, ${len(params)})")
        clauses.append("(" + " OR ".join(ors) + ")")
    return clauses


async def read_all(
    conn: Any,
    *,
    from_position: int | None = None,
    backwards: bool = False,
    limit: int | None = None,
    filter: EventFilter | None = None,
    up_to: int | None = None,
) -> list[RecordedEvent]:
    """Events of the global log from `from_position` (inclusive) that `filter` selects, and (when
    given) at most `up_to`."""
    params: list[Any] = []
    clauses = _filter_sql(filter or EventFilter(), params)
    if from_position is not None:
        params.append(from_position)
        clauses.append(f"position {'<=' if backwards else '>='} ${len(params)}")
    if up_to is not None:
        params.append(up_to)
        clauses.append(f"position <= ${len(params)}")
    params.append(None if limit is None else max(limit, 0))
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM es_events WHERE {' AND '.join(clauses)}"
        f" ORDER BY position {'DESC' if backwards else 'ASC'} LIMIT ${len(params)}"
    )
    return [row_to_event(row) for row in await conn.fetch(sql, *params)]


async def head_position(conn: Any) -> int:
    """The position of the newest event, 0 when the log is empty."""
    value = await conn.fetchval("SELECT coalesce(max(position), 0) FROM es_events")
    return int(value)


async def scan_all(
    conn: Any, *, after: int, limit: int, filter: EventFilter
) -> tuple[list[RecordedEvent], int]:
    """The next page after `after`, and how far the scan got (so filtered-out stretches are not
    scanned twice). The head is read first and bounds the page: every position up to a visible
    head is already visible (see `writer`), so "scanned up to the head" cannot skip a late one."""
    head = await head_position(conn)
    if head <= after:
        return [], after
    page = await read_all(conn, from_position=after + 1, limit=limit, filter=filter, up_to=head)
    if len(page) == limit:
        return page, page[-1].position
    return page, head


async def stream_metadata(conn: Any, stream: str) -> dict[str, Any]:
    """The newest metadata of `stream`; a tombstoned stream's raises `StreamDeleted`."""
    head = await load_head(conn, stream)
    if head.tombstoned:
        raise StreamDeleted(stream)
    raw = await conn.fetchval(
        "SELECT data FROM es_events WHERE stream = $1 AND type = $2 ORDER BY version DESC LIMIT 1",
        metastream_of(stream),
        METADATA_EVENT_TYPE,
    )
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
