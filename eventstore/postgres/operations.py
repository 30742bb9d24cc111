"""The writes the group-commit writer runs inside its batch transaction: append, delete,
tombstone. Each checks before it writes, so a refusal leaves nothing behind in the batch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from eventstore.port import (
    ANY,
    EXISTS,
    NO_STREAM,
    AppendResult,
    EventStoreError,
    ExpectedVersion,
    NewEvent,
    StreamDeleted,
    WrongExpectedVersion,
)
from eventstore.postgres.schema import (
    EXPECT_ANY,
    EXPECT_EXISTS,
    EXPECT_NO_STREAM,
    STATUS_DELETED,
    STATUS_WRONG_VERSION,
)
from eventstore.streams import (
    METADATA_EVENT_TYPE,
    TOMBSTONE_EVENT_TYPE,
    TRUNCATE_BEFORE,
    metastream_of,
)

_APPEND = "SELECT status, out_version, out_position FROM es_append($1, $2, $3, $4, $5, $6, $7, $8)"


def expectation_code(expected: ExpectedVersion) -> int:
    """`es_append`'s encoding of an expectation."""
    if isinstance(expected, int):
        if expected < 1:
            raise ValueError(f"an exact expected version is >= 1, got {expected}")
        return expected
    if expected is NO_STREAM:
        return EXPECT_NO_STREAM
    if expected is EXISTS:
        return EXPECT_EXISTS
    return EXPECT_ANY


async def _call(
    conn: Any,
    stream: str,
    events: Sequence[NewEvent],
    expected: ExpectedVersion,
    recorded_at: datetime,
) -> AppendResult:
    status, version, position = await conn.fetchrow(
        _APPEND,
        stream,
        expectation_code(expected),
        [e.id for e in events],
        [e.type for e in events],
        [e.data for e in events],
        [e.metadata for e in events],
        [e.content_type for e in events],
        recorded_at,
    )
    if status == STATUS_DELETED:
        raise StreamDeleted(stream)
    if status == STATUS_WRONG_VERSION:
        raise WrongExpectedVersion(stream, expected, version)
    return AppendResult(version=version, position=position)


@dataclass(frozen=True, slots=True, kw_only=True)
class Append:
    """One append of a batch."""

    stream: str
    events: Sequence[NewEvent]
    expected: ExpectedVersion


_APPEND_BATCH = (
    "SELECT status, out_version, out_position"
    " FROM es_append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)


async def append_many(
    conn: Any, appends: Sequence[Append], recorded_at: datetime
) -> list[AppendResult | EventStoreError | ValueError]:
    """Every append of `appends` in order, in one round trip; each one's result or refusal (a
    refused append writes nothing, and later ones see the effect of earlier ones)."""
    outcomes: list[AppendResult | EventStoreError | ValueError | None] = []
    valid: list[tuple[Append, int]] = []
    for item in appends:
        try:
            valid.append((item, expectation_code(item.expected)))
            outcomes.append(None)
        except ValueError as refused:
            outcomes.append(refused)
    events = [e for item, _ in valid for e in item.events]
    rows = await conn.fetch(
        _APPEND_BATCH,
        [item.stream for item, _ in valid],
        [code for _, code in valid],
        [len(item.events) for item, _ in valid],
        [e.id for e in events],
        [e.type for e in events],
        [e.data for e in events],
        [e.metadata for e in events],
        [e.content_type for e in events],
        recorded_at,
    )
    answers = iter(zip(valid, rows, strict=True))
    results: list[AppendResult | EventStoreError | ValueError] = []
    for outcome in outcomes:
        if outcome is not None:
            results.append(outcome)
            continue
        (item, _), (status, version, position) = next(answers)
        if status == STATUS_DELETED:
            results.append(StreamDeleted(item.stream))
        elif status == STATUS_WRONG_VERSION:
            results.append(WrongExpectedVersion(item.stream, item.expected, version))
        else:
            results.append(AppendResult(version=version, position=position))
    return results


async def delete(
    conn: Any,
    recorded_at: datetime,
    stream: str,
    expected: ExpectedVersion,
    event_id: uuid.UUID,
) -> None:
    """Soft delete: `$tb` = the next revision in the stream's metadata, as the other stores."""
    head = await _call(conn, stream, (), expected, recorded_at)
    if head.version == 0:
        # EventStoreDB refuses to soft-delete a stream that never existed, whatever the
        # expectation.
        raise WrongExpectedVersion(stream, expected, None)
    raw = await conn.fetchval(
        "SELECT data FROM es_events WHERE stream = $1 AND type = $2 ORDER BY version DESC LIMIT 1",
        metastream_of(stream),
        METADATA_EVENT_TYPE,
    )
    metadata: dict[str, Any] = {}
    if raw:
        try:
            loaded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            loaded = {}
        metadata = loaded if isinstance(loaded, dict) else {}
    raw_version = await conn.fetchval("SELECT version FROM es_streams WHERE name = $1", stream)
    metadata[TRUNCATE_BEFORE] = raw_version
    stamped = NewEvent(id=event_id, type=METADATA_EVENT_TYPE, data=orjson.dumps(metadata))
    await _call(conn, metastream_of(stream), [stamped], ANY, recorded_at)


async def tombstone(
    conn: Any,
    recorded_at: datetime,
    stream: str,
    expected: ExpectedVersion,
    event_id: uuid.UUID,
) -> None:
    """Hard delete: a `$streamDeleted` event after the last one; every later use raises."""
    await _call(conn, stream, (), expected, recorded_at)
    await conn.execute(
        "WITH head AS (SELECT coalesce((SELECT version FROM es_streams WHERE name = $1), 0) AS v),"
        " marker AS (INSERT INTO es_events (position, id, stream, version, type, data, metadata,"
        "  content_type, recorded_at)"
        "  SELECT (SELECT coalesce(max(position), 0) + 1 FROM es_events), $2, $1, head.v + 1, $3,"
        "   ''::bytea, ''::bytea, 'application/octet-stream', $4 FROM head)"
        " INSERT INTO es_streams (name, version, tombstoned) SELECT $1, head.v, true FROM head"
        " ON CONFLICT (name) DO UPDATE SET tombstoned = true",
        stream,
        event_id,
        TOMBSTONE_EVENT_TYPE,
        recorded_at,
    )
