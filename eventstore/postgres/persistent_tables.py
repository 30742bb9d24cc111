"""Durable state of persistent-subscription groups in PostgreSQL: definitions, checkpoints and
parked events, shared by every process on the database.

A group is split into fixed partitions by its pin key (`partition_key`, `partition_of`):
`PARTITIONS` for a group on $all, one for a group on a stream. Each partition has its own
checkpoint; the group's is the lowest of them. A process runs only the partitions it owns (see
`persistent`), and its runtime checkpoints those (`for_partitions`).

A running group (`eventstore.persistent.group.GroupRuntime`) parks and checkpoints from the event
loop without waiting. Here those two writes go into one ordered queue that a task drains: a park
is always stored before the checkpoint that passes it, so a crash in between loses at most the
checkpoint's progress (the event is delivered again), never the parked event.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg
import orjson

from eventstore.outage_log import OUTAGES
from eventstore.persistent.records import GroupDefinition, GroupRecord, stream_key
from eventstore.port import ConsumerStrategy, RecordedEvent
from eventstore.postgres.stale import explained
from eventstore.rows import row_to_event
from eventstore.sql import group_rows

logger = logging.getLogger(__name__)

_PARKED_COLUMNS = (
    "position, uuid_send(event_id), stream, version, type, data, metadata, content_type,"
    " (extract(epoch FROM recorded_at) * 1000000)::int8"
)

Write = Callable[[Any], Awaitable[object]]

PARTITIONS = 16
"""Partitions of a new group on $all (a group on one stream has one)."""

# The group's checkpoint: the lowest of its partitions' (None while any has none).
_CHECKPOINT = (
    "(SELECT CASE WHEN bool_or(p.checkpoint IS NULL) THEN NULL ELSE min(p.checkpoint) END"
    " FROM es_persistent_partitions p"
    " WHERE p.stream_key = g.stream_key AND p.group_name = g.group_name) AS checkpoint"
)
_GROUP_COLUMNS = (
    f"g.stream_key, g.group_name, g.settings::text AS settings, g.start_after, {_CHECKPOINT}"
)


def partition_key(strategy: ConsumerStrategy, stream: str, metadata: bytes) -> str:
    """What an event is partitioned by: what the group pins by (its `$correlationId` for
    PinnedByCorrelation, when it has one), else its stream."""
    if strategy is ConsumerStrategy.PINNED_BY_CORRELATION:
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            correlation = orjson.loads(metadata).get("$correlationId")
            if isinstance(correlation, str):
                return correlation
    return stream


def partition_of(key: str, count: int) -> int:
    """The partition, of a group with `count`, of the events with this `partition_key`: they all
    go to one partition, so a pinned group keeps their order."""
    return zlib.crc32(key.encode()) % count if count > 1 else 0


class PostgresGroupTables:
    """The `GroupStorage` of the PostgreSQL store: the group tables over its connection pool."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._writes: asyncio.Queue[Write | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._partitions: list[int] | None = None  # a view's: the partitions it checkpoints
        self._on_save: Callable[[int], None] | None = None

    def for_partitions(
        self, partitions: Iterable[int], on_save: Callable[[int], None]
    ) -> PostgresGroupTables:
        """The same tables (and write queue) for a runtime that runs only `partitions`: its
        checkpoints go to those partitions, and `on_save` hears of each."""
        view = copy.copy(self)
        view._partitions = sorted(partitions)
        view._on_save = on_save
        return view

    async def start(self) -> None:
        """Start the task that stores parks and checkpoints in order."""
        self._task = asyncio.create_task(self._drain(), name="postgres-group-writes")

    async def close(self) -> None:
        """Store what is queued, then stop."""
        if self._task is None:
            return
        self._writes.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def flush(self) -> None:
        """Wait until every queued write is stored."""
        done = asyncio.get_running_loop().create_future()

        async def mark(_: Any) -> None:
            if not done.done():
                done.set_result(None)

        self._writes.put_nowait(mark)
        await done

    async def _drain(self) -> None:
        while True:
            write = await self._writes.get()
            if write is None:
                return
            while True:
                try:
                    async with self._pool.acquire() as conn:
                        await write(conn)
                    break
                except (
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                    asyncpg.InternalClientError,
                ) as error:
                    # Never drop a park: retry until stored (or the store closes).
                    OUTAGES.failed("eventStore", explained(error))  # one line per outage
                    await asyncio.sleep(0.5)

    # -- the running group's writes (queued) -----------------------------------------------------

    def park(self, group: str, stream: str | None, events: list[RecordedEvent]) -> None:
        """Append events to the group's parked list (stored in order, see the module doc)."""
        rows = group_rows.parked_params(group, stream, events, as_text=False)

        async def write(conn: Any) -> None:
            await conn.executemany(
                f"INSERT INTO es_persistent_parked ({group_rows.PARKED_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                rows,
            )

        self._writes.put_nowait(write)

    def save_checkpoint(self, group: str, stream: str | None, checkpoint: int) -> None:
        """Record that everything up to `checkpoint` is done in this view's partitions (every
        partition when it is no view); a checkpoint never moves backwards."""
        if self._on_save is not None:
            self._on_save(checkpoint)
        self.advance(group, stream, self._partitions, checkpoint)

    def advance(
        self, group: str, stream: str | None, partitions: list[int] | None, checkpoint: int
    ) -> None:
        """Queue: `partitions` (None: all) are done up to `checkpoint` (never backwards)."""

        async def write(conn: Any) -> None:
            await conn.execute(
                "UPDATE es_persistent_partitions SET checkpoint = $1 WHERE stream_key = $2"
                " AND group_name = $3 AND (checkpoint IS NULL OR checkpoint < $1)"
                " AND ($4::int[] IS NULL OR partition = ANY ($4::int[]))",
                checkpoint,
                stream_key(stream),
                group,
                partitions,
            )

        self._writes.put_nowait(write)

    # -- definitions and queries -----------------------------------------------------------------

    async def insert_group(self, record: GroupRecord) -> bool:
        """Store a new group and its partitions; False if one of that name exists."""
        key = stream_key(record.stream)
        count = PARTITIONS if record.stream is None else 1
        async with self._pool.acquire() as conn, conn.transaction():
            status: str = await conn.execute(
                f"INSERT INTO es_persistent_groups ({group_rows.GROUP_COLUMNS})"
                " VALUES ($1, $2, $3::jsonb, $4, $5) ON CONFLICT DO NOTHING",
                *group_rows.group_params(record),
            )
            if not status.endswith(" 1"):
                return False
            await conn.execute(
                "INSERT INTO es_persistent_partitions (stream_key, group_name, partition,"
                " checkpoint) SELECT $1, $2, p, $4 FROM generate_series(0, $3 - 1) p",
                key,
                record.group,
                count,
                record.checkpoint,
            )
        return True

    async def update_group(self, definition: GroupDefinition) -> None:
        """Replace a group's settings and start point; its checkpoint stays."""
        await self._pool.execute(
            "UPDATE es_persistent_groups SET settings = $1::jsonb, start_after = $2"
            " WHERE stream_key = $3 AND group_name = $4",
            *group_rows.settings_params(definition),
        )

    async def delete_group(self, group: str, stream: str | None) -> bool:
        """Remove a group and its parked events; False if it did not exist."""
        await self.flush()
        key = stream_key(stream)
        async with self._pool.acquire() as conn, conn.transaction():
            status: str = await conn.execute(
                "DELETE FROM es_persistent_groups WHERE stream_key = $1 AND group_name = $2",
                key,
                group,
            )
            for table in (
                "es_persistent_parked",
                "es_persistent_partitions",
                "es_persistent_members",
            ):
                await conn.execute(
                    f"DELETE FROM {table} WHERE stream_key = $1 AND group_name = $2", key, group
                )
        return status.endswith(" 1")

    async def get_group(self, group: str, stream: str | None) -> GroupRecord | None:
        """One group, or None."""
        row = await self._pool.fetchrow(
            f"SELECT {_GROUP_COLUMNS} FROM es_persistent_groups g"
            " WHERE g.stream_key = $1 AND g.group_name = $2",
            stream_key(stream),
            group,
        )
        return None if row is None else group_rows.group_record(row)

    async def list_groups(self, stream: str | None, *, every_stream: bool) -> list[GroupRecord]:
        """The groups on `stream` ($all when None), or on every target when `every_stream`."""
        where, params = group_rows.groups_filter(
            stream, every_stream=every_stream, placeholder="$1"
        )
        rows = await self._pool.fetch(
            f"SELECT {_GROUP_COLUMNS} FROM es_persistent_groups g{where}"
            " ORDER BY g.stream_key, g.group_name",
            *params,
        )
        return [group_rows.group_record(row) for row in rows]

    async def count_parked(self, group: str, stream: str | None) -> int:
        """How many events the group has parked (queued parks included)."""
        await self.flush()
        value = await self._pool.fetchval(
            "SELECT count(*) FROM es_persistent_parked WHERE stream_key = $1 AND group_name = $2",
            stream_key(stream),
            group,
        )
        return int(value)

    async def list_parked(
        self, group: str, stream: str | None, limit: int | None
    ) -> list[RecordedEvent]:
        """The group's parked events, oldest parking first."""
        await self.flush()
        rows = await self._pool.fetch(
            f"SELECT {_PARKED_COLUMNS} FROM es_persistent_parked WHERE stream_key = $1"
            " AND group_name = $2 ORDER BY seq LIMIT $3",
            stream_key(stream),
            group,
            limit,
        )
        return [row_to_event(row) for row in rows]

    async def take_parked(self, group: str, stream: str | None) -> list[RecordedEvent]:
        """Remove and return every parked event of the group, in one transaction."""
        await self.flush()
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"DELETE FROM es_persistent_parked WHERE stream_key = $1 AND group_name = $2"
                f" RETURNING seq, {_PARKED_COLUMNS}",
                stream_key(stream),
                group,
            )
        return [row_to_event(tuple(row)[1:]) for row in sorted(rows, key=lambda r: r[0])]

    # -- partitions and replay requests ----------------------------------------------------------

    async def partitions(self, group: str, stream: str | None) -> dict[int, tuple[int | None, int]]:
        """Each partition of the group: (its checkpoint, the replay request it last acted on)."""
        await self.flush()
        rows = await self._pool.fetch(
            "SELECT partition, checkpoint, replayed FROM es_persistent_partitions"
            " WHERE stream_key = $1 AND group_name = $2",
            stream_key(stream),
            group,
        )
        return {row["partition"]: (row["checkpoint"], row["replayed"]) for row in rows}

    async def request_replay(self, group: str, stream: str | None, channel: str) -> int:
        """Ask every owner of the group's partitions to replay their parked events (notifying
        `channel`); the request's number."""
        key = stream_key(stream)
        async with self._pool.acquire() as conn, conn.transaction():
            number: int = await conn.fetchval(
                "UPDATE es_persistent_groups SET replay = replay + 1"
                " WHERE stream_key = $1 AND group_name = $2 RETURNING replay",
                key,
                group,
            )
            await conn.execute("SELECT pg_notify($1, $2)", channel, f"{key}::{group}")
        return number

    async def replay_request(self, group: str, stream: str | None) -> int | None:
        """The number of the group's newest replay request (None: the group is gone)."""
        value: int | None = await self._pool.fetchval(
            "SELECT replay FROM es_persistent_groups WHERE stream_key = $1 AND group_name = $2",
            stream_key(stream),
            group,
        )
        return value

    async def take_parked_of(
        self,
        group: str,
        stream: str | None,
        partitions: set[int],
        count: int,
        strategy: ConsumerStrategy,
        request: int,
    ) -> list[RecordedEvent]:
        """Remove and return the parked events of `partitions` (of `count`, by `strategy`'s
        `partition_key`), marking those as having acted on replay request `request`, in one
        transaction."""
        await self.flush()
        key = stream_key(stream)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE es_persistent_partitions SET replayed = $3 WHERE stream_key = $1"
                " AND group_name = $2 AND partition = ANY ($4::int[]) AND replayed < $3",
                key,
                group,
                request,
                sorted(partitions),
            )
            rows = await conn.fetch(
                "SELECT seq, stream, metadata FROM es_persistent_parked WHERE stream_key = $1"
                " AND group_name = $2 FOR UPDATE",
                key,
                group,
            )
            seqs = [
                r["seq"]
                for r in rows
                if partition_of(partition_key(strategy, r["stream"], r["metadata"]), count)
                in partitions
            ]
            if not seqs:
                return []
            taken = await conn.fetch(
                f"DELETE FROM es_persistent_parked WHERE seq = ANY ($1::bigint[])"
                f" RETURNING seq, {_PARKED_COLUMNS}",
                seqs,
            )
        return [row_to_event(tuple(row)[1:]) for row in sorted(taken, key=lambda r: r[0])]
