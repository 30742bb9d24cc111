"""The PostgreSQL layout, created and migrated by the service itself.

`es_schema_version` records every migration applied. `migrate` runs the missing ones in order,
under a transaction-level advisory lock, so processes starting together on one database apply each
migration exactly once and the rest wait, then find nothing to do.

Positions: `es_events.position` is assigned by the append function as `max(position) + 1` while
the appending transaction holds the advisory lock `POSITION_LOCK` (see `writer`), so positions
become visible in commit order and a reader that sees a position sees every smaller one.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

POSITION_LOCK = 0x6F72_6465_7273_0001
"""Advisory lock held by every appending transaction until it commits: positions in commit order."""

_MIGRATION_LOCK = 0x6F72_6465_7273_0000

NOTIFY_CHANNEL = "es_events"
"""The LISTEN/NOTIFY channel every append batch notifies on commit (payload: the new head)."""

MEMBERS_CHANNEL = "es_group_members"
"""The channel a group's members notify when its membership, ownership or replay requests change
(payload: `<target>::<group>`)."""

# Expectation codes passed to es_append (exact versions are >= 1).
EXPECT_NO_STREAM = 0
EXPECT_ANY = -1
EXPECT_EXISTS = -2

# es_append's status codes.
STATUS_OK = 0
STATUS_WRONG_VERSION = 1
STATUS_DELETED = 2

_V1 = r"""
CREATE TABLE es_events (
    position     bigint      PRIMARY KEY,
    id           uuid        NOT NULL,
    stream       text        NOT NULL,
    version      bigint      NOT NULL,
    type         text        NOT NULL,
    data         bytea       NOT NULL,
    metadata     bytea       NOT NULL,
    content_type text        NOT NULL,
    recorded_at  timestamptz NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE es_streams (
    name       text    PRIMARY KEY,
    version    bigint  NOT NULL,
    tombstoned boolean NOT NULL DEFAULT false
);

-- A stream read limit from its metadata: a non-negative integer, else NULL (as the other stores).
CREATE FUNCTION es_meta_count(raw bytea, key text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE
    doc jsonb;
BEGIN
    BEGIN
        doc := convert_from(raw, 'UTF8')::jsonb;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
    IF jsonb_typeof(doc) <> 'object' OR jsonb_typeof(doc -> key) <> 'number' THEN
        RETURN NULL;
    END IF;
    IF (doc ->> key)::numeric < 0 OR (doc ->> key)::numeric <> trunc((doc ->> key)::numeric) THEN
        RETURN NULL;
    END IF;
    RETURN (doc ->> key)::numeric::bigint;
END;
$fn$;

-- A stream's head: raw version, tombstone (its own, or its described stream's for a metastream),
-- and the read limits its newest metadata sets.
CREATE FUNCTION es_head(
    p_stream text,
    OUT version bigint, OUT tombstoned boolean, OUT truncate_before bigint, OUT max_count bigint
) LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    meta bytea;
BEGIN
    SELECT s.version, s.tombstoned INTO version, tombstoned
      FROM es_streams s WHERE s.name = p_stream;
    version := coalesce(version, 0);
    tombstoned := coalesce(tombstoned, false);
    IF left(p_stream, 2) = '$$' THEN
        max_count := 1;
        tombstoned := tombstoned OR coalesce(
            (SELECT s.tombstoned FROM es_streams s WHERE s.name = substr(p_stream, 3)), false);
        RETURN;
    END IF;
    IF version > 0 THEN
        SELECT e.data INTO meta FROM es_events e
         WHERE e.stream = '$$' || p_stream AND e.type = '$metadata'
         ORDER BY e.version DESC LIMIT 1;
        IF meta IS NOT NULL THEN
            truncate_before := es_meta_count(meta, '$tb');
            max_count := es_meta_count(meta, '$maxCount');
        END IF;
    END IF;
END;
$fn$;

-- The original (version, position) when p_ids already sit at versions base+1..base+n.
CREATE FUNCTION es_retry_of(p_stream text, p_base bigint, p_ids uuid[],
                            OUT out_version bigint, OUT out_position bigint)
LANGUAGE sql STABLE AS $fn$
    SELECT p_base + cardinality(p_ids), max(e.position) FROM es_events e
     WHERE e.stream = p_stream AND e.version > p_base AND e.version <= p_base + cardinality(p_ids)
    HAVING array_agg(e.id ORDER BY e.version) = p_ids
$fn$;

-- Append (or, with no events, only check the expectation). Expectation codes: >= 1 exact,
-- 0 no stream, -1 any, -2 exists. Status: 0 done (or an idempotent retry: the original result),
-- 1 wrong expected version (version: the actual one, NULL when the stream does not exist),
-- 2 stream deleted. The caller must hold the position lock: positions are max + 1.
CREATE FUNCTION es_append(
    p_stream text, p_expected bigint, p_ids uuid[], p_types text[], p_data bytea[],
    p_metadata bytea[], p_content_types text[], p_recorded_at timestamptz,
    OUT status int, OUT out_version bigint, OUT out_position bigint
) LANGUAGE plpgsql AS $fn$
DECLARE
    h record;
    n int := coalesce(cardinality(p_ids), 0);
    soft_deleted boolean;
    does_exist boolean;
    base bigint;
    last_position bigint;
BEGIN
    SELECT * INTO h FROM es_head(p_stream);
    IF h.tombstoned THEN
        status := 2;
        RETURN;
    END IF;
    soft_deleted := h.version > 0 AND h.truncate_before IS NOT NULL
                    AND h.truncate_before >= h.version;
    does_exist := h.version > 0 AND NOT soft_deleted;
    IF p_expected >= 1 THEN
        IF h.version <> p_expected THEN
            IF h.version > p_expected AND n > 0 THEN
                SELECT r.out_version, r.out_position INTO out_version, out_position
                  FROM es_retry_of(p_stream, p_expected, p_ids) r;
                IF out_position IS NOT NULL THEN
                    status := 0;
                    RETURN;
                END IF;
            END IF;
            status := 1;
            out_version := CASE WHEN does_exist THEN h.version END;
            out_position := NULL;
            RETURN;
        END IF;
    ELSIF p_expected = 0 THEN
        IF does_exist THEN
            IF n > 0 THEN
                -- A stream re-created after a soft delete started numbering after $tb.
                FOREACH base IN ARRAY ARRAY[0, least(coalesce(h.truncate_before, 0), h.version)]
                LOOP
                    SELECT r.out_version, r.out_position INTO out_version, out_position
                      FROM es_retry_of(p_stream, base, p_ids) r;
                    IF out_position IS NOT NULL THEN
                        status := 0;
                        RETURN;
                    END IF;
                END LOOP;
            END IF;
            status := 1;
            out_version := h.version;
            out_position := NULL;
            RETURN;
        END IF;
    ELSE
        IF n > 0 AND h.version > 0 AND (
            SELECT count(DISTINCT e.id) FROM es_events e
             WHERE e.stream = p_stream AND e.id = ANY (p_ids)
        ) = (SELECT count(DISTINCT i) FROM unnest(p_ids) i) THEN
            SELECT e.version, e.position INTO out_version, out_position FROM es_events e
             WHERE e.stream = p_stream AND e.id = p_ids[n] ORDER BY e.version DESC LIMIT 1;
            status := 0;
            RETURN;
        END IF;
        IF p_expected = -2 AND NOT does_exist THEN
            status := 1;
            out_version := NULL;
            RETURN;
        END IF;
    END IF;
    status := 0;
    IF n = 0 THEN
        out_version := h.version;
        out_position := coalesce((SELECT e.position FROM es_events e
                               WHERE e.stream = p_stream AND e.version = h.version), 0);
        RETURN;
    END IF;
    SELECT coalesce(max(e.position), 0) INTO last_position FROM es_events e;
    INSERT INTO es_events (position, id, stream, version, type, data, metadata, content_type,
                           recorded_at)
    SELECT last_position + i, p_ids[i], p_stream, h.version + i, p_types[i], p_data[i],
           p_metadata[i], p_content_types[i], p_recorded_at
      FROM generate_series(1, n) i;
    INSERT INTO es_streams (name, version, tombstoned) VALUES (p_stream, h.version + n, false)
    ON CONFLICT (name) DO UPDATE SET version = excluded.version, tombstoned = false;
    out_version := h.version + n;
    out_position := last_position + n;
END;
$fn$;

CREATE TABLE es_persistent_groups (
    stream_key  text   NOT NULL,
    group_name  text   NOT NULL,
    settings    jsonb  NOT NULL,
    start_after bigint,
    checkpoint  bigint,
    PRIMARY KEY (stream_key, group_name)
);
CREATE TABLE es_persistent_parked (
    seq          bigserial   PRIMARY KEY,
    stream_key   text        NOT NULL,
    group_name   text        NOT NULL,
    event_id     uuid        NOT NULL,
    stream       text        NOT NULL,
    type         text        NOT NULL,
    version      bigint      NOT NULL,
    position     bigint      NOT NULL,
    data         bytea       NOT NULL,
    metadata     bytea       NOT NULL,
    content_type text        NOT NULL,
    recorded_at  timestamptz NOT NULL
);
CREATE INDEX es_persistent_parked_group ON es_persistent_parked (stream_key, group_name, seq);
"""


def _read_stream_function(create: str, first_after_tb: str) -> str:
    """`es_read_stream` as migration 2 created it and migration 4 replaced it: they differ only
    in where `$tb` puts the first readable version."""
    return rf"""
{create} FUNCTION es_read_stream(p_stream text, p_from bigint, p_backwards boolean, p_limit bigint)
RETURNS TABLE (
    r_tombstoned boolean, r_position bigint, r_id bytea, r_stream text, r_version bigint,
    r_type text, r_data bytea, r_metadata bytea, r_content_type text, r_recorded_at bigint
) LANGUAGE sql STABLE AS $fn$
    WITH h AS (SELECT * FROM es_head(p_stream)),
    b AS (
        SELECT h.tombstoned AS t, h.version AS last,
               greatest(1, coalesce(h.version - h.max_count + 1, 1),
                        {first_after_tb}) AS first
          FROM h
    )
    SELECT b.t, e.position, uuid_send(e.id), e.stream, e.version, e.type, e.data, e.metadata,
           e.content_type, (extract(epoch FROM e.recorded_at) * 1000000)::int8
      FROM b LEFT JOIN LATERAL (
        (SELECT * FROM es_events x
          WHERE p_backwards AND NOT b.t AND x.stream = p_stream AND x.version >= b.first
            AND x.version <= least(coalesce(p_from, b.last), b.last)
          ORDER BY x.version DESC LIMIT p_limit)
        UNION ALL
        (SELECT * FROM es_events x
          WHERE NOT p_backwards AND NOT b.t AND x.stream = p_stream
            AND x.version >= greatest(coalesce(p_from, b.first), b.first) AND x.version <= b.last
          ORDER BY x.version LIMIT p_limit)
      ) e ON true
     ORDER BY CASE WHEN p_backwards THEN -e.version ELSE e.version END
$fn$;
"""


# One round trip for a whole batch of appends, and one for a stream read (head, limits, events).
_V2 = r"""
CREATE FUNCTION es_append_batch(
    p_streams text[], p_expected bigint[], p_counts int[], p_ids uuid[], p_types text[],
    p_data bytea[], p_metadata bytea[], p_content_types text[], p_recorded_at timestamptz
) RETURNS TABLE (status int, out_version bigint, out_position bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    i int;
    lo int := 1;
    hi int;
    r record;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_streams), 0) LOOP
        hi := lo + p_counts[i] - 1;
        SELECT * INTO r FROM es_append(
            p_streams[i], p_expected[i], p_ids[lo:hi], p_types[lo:hi], p_data[lo:hi],
            p_metadata[lo:hi], p_content_types[lo:hi], p_recorded_at);
        status := r.status;
        out_version := r.out_version;
        out_position := r.out_position;
        RETURN NEXT;
        lo := hi + 1;
    END LOOP;
END;
$fn$;

-- The readable events of a stream ($maxCount, $tb honoured) from p_from (inclusive; NULL: the
-- first, or the last backwards), with the head's tombstone flag on every row (one row of NULL
-- events when there are none).""" + _read_stream_function(
    "CREATE", "coalesce(h.truncate_before + 1, 1)"
)

# Groups shared by processes: a group is split into fixed partitions (each with its own checkpoint,
# and the replay request it last acted on), run by the members owning them. The partitions start
# at their group's checkpoint, and es_persistent_groups.checkpoint is no longer written.
_V3 = r"""
CREATE TABLE es_persistent_partitions (
    stream_key text   NOT NULL,
    group_name text   NOT NULL,
    partition  int    NOT NULL,
    checkpoint bigint,
    replayed   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (stream_key, group_name, partition)
);
INSERT INTO es_persistent_partitions (stream_key, group_name, partition, checkpoint)
SELECT g.stream_key, g.group_name, p, g.checkpoint
  FROM es_persistent_groups g,
       generate_series(0, CASE WHEN g.stream_key = '$all' THEN 15 ELSE 0 END) p;
ALTER TABLE es_persistent_groups ADD COLUMN replay bigint NOT NULL DEFAULT 0;
CREATE TABLE es_persistent_members (
    stream_key  text        NOT NULL,
    group_name  text        NOT NULL,
    member_id   text        NOT NULL,
    backend_pid int         NOT NULL,
    consumers   int         NOT NULL,
    delivered   bigint      NOT NULL DEFAULT 0,
    heartbeat   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_key, group_name, member_id)
);
"""

# Stream reads clamp `$tb` to the head, as `eventstore.streams.StreamHead.first_readable` does:
# EventStoreDB's "deleted" `$tb` (long.MaxValue, 2^63 - 1) + 1 was out of bigint's range.
_V4 = _read_stream_function(
    "CREATE OR REPLACE",
    # least() skips NULLs: no `$tb` must not clamp to the head.
    "CASE WHEN h.truncate_before IS NULL THEN 1 ELSE least(h.truncate_before, h.version) + 1 END",
)

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4)
"""Migration n + 1 takes the schema from version n to n + 1. Append, never edit."""


async def migrate(conn: Any) -> int:
    """Bring the schema to the newest version (idempotent, safe to race); the version now."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS es_schema_version ("
            " version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current: int = await conn.fetchval(
            "SELECT coalesce(max(version), 0) FROM es_schema_version"
        )
        for number, ddl in enumerate(MIGRATIONS[current:], start=current + 1):
            await conn.execute(ddl)
            await conn.execute("INSERT INTO es_schema_version (version) VALUES ($1)", number)
            logger.info("event=pg_schema_migrated version=%d", number)
        return len(MIGRATIONS) if current < len(MIGRATIONS) else current
