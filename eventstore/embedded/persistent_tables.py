"""Durable state of the embedded persistent subscriptions: group definitions, checkpoints and
parked events, in their own tables of the store's SQLite file.

Every call runs on one thread of our own, with its own connection, in the order made: the event
loop never waits for SQLite, and a query sees every park and checkpoint queued before it.

Parked events live in a table of ours rather than in `$persistentsubscription-...-parked` streams:
EventStoreDB hides those streams from `$all`, and keeping them out of the log spares every `$all`
reader that special case.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from eventstore.persistent.records import GroupDefinition, GroupRecord, stream_key
from eventstore.port import RecordedEvent
from eventstore.sql import group_rows

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

WRITE_RETRY = 0.5
"""Seconds between attempts at a park or checkpoint that SQLite refused."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS persistent_groups (
    stream_key  TEXT NOT NULL,
    group_name  TEXT NOT NULL,
    settings    TEXT NOT NULL,
    start_after INTEGER,
    checkpoint  INTEGER,
    PRIMARY KEY (stream_key, group_name)
);
CREATE TABLE IF NOT EXISTS persistent_parked (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_key   TEXT NOT NULL,
    group_name   TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    stream       TEXT NOT NULL,
    type         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    data         BLOB NOT NULL,
    metadata     BLOB NOT NULL,
    content_type TEXT NOT NULL,
    recorded_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS persistent_parked_group
    ON persistent_parked (stream_key, group_name, seq);
"""


class _Tables:
    """Our own connection to the store's SQLite file, used only on the storage's thread. Every
    call is one short transaction."""

    def __init__(self, db_path: Path) -> None:
        self._db_path = db_path
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Connect and create the tables if needed."""
        conn = sqlite3.connect(
            self._db_path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
        self._conn = conn

    def close(self) -> None:
        """Disconnect (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("persistent-subscription tables are not open")
        return self._conn

    def insert_group(self, record: GroupRecord) -> bool:
        """Store a new group; False if one of that name exists."""
        cursor = self._db.execute(
            f"INSERT OR IGNORE INTO persistent_groups ({group_rows.GROUP_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?)",
            group_rows.group_params(record),
        )
        return cursor.rowcount == 1

    def update_group(self, definition: GroupDefinition) -> None:
        """Replace a group's settings and start point; its checkpoint stays."""
        self._db.execute(
            "UPDATE persistent_groups SET settings = ?, start_after = ?"
            " WHERE stream_key = ? AND group_name = ?",
            group_rows.settings_params(definition),
        )

    def delete_group(self, group: str, stream: str | None) -> bool:
        """Remove a group and its parked events; False if it did not exist."""
        key = stream_key(stream)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute(
                "DELETE FROM persistent_groups WHERE stream_key = ? AND group_name = ?",
                (key, group),
            )
            db.execute(
                "DELETE FROM persistent_parked WHERE stream_key = ? AND group_name = ?",
                (key, group),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return cursor.rowcount == 1

    def get_group(self, group: str, stream: str | None) -> GroupRecord | None:
        """One group, or None."""
        row = self._db.execute(
            f"SELECT {group_rows.GROUP_COLUMNS} FROM persistent_groups"
            " WHERE stream_key = ? AND group_name = ?",
            (stream_key(stream), group),
        ).fetchone()
        return None if row is None else group_rows.group_record(row)

    def list_groups(self, stream: str | None, *, every_stream: bool) -> list[GroupRecord]:
        """The groups on `stream` ($all when None), or on every target when `every_stream`."""
        where, params = group_rows.groups_filter(stream, every_stream=every_stream, placeholder="?")
        rows = self._db.execute(
            f"SELECT {group_rows.GROUP_COLUMNS} FROM persistent_groups{where}"
            " ORDER BY stream_key, group_name",
            params,
        ).fetchall()
        return [group_rows.group_record(row) for row in rows]

    def save_checkpoint(self, group: str, stream: str | None, checkpoint: int) -> None:
        """Record that everything up to `checkpoint` (inclusive) is done."""
        self._db.execute(
            "UPDATE persistent_groups SET checkpoint = ? WHERE stream_key = ? AND group_name = ?",
            (checkpoint, stream_key(stream), group),
        )

    def park(self, group: str, stream: str | None, events: list[RecordedEvent]) -> None:
        """Append events to the group's parked list."""
        self._db.executemany(
            f"INSERT INTO persistent_parked ({group_rows.PARKED_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            group_rows.parked_params(group, stream, events, as_text=True),
        )

    def count_parked(self, group: str, stream: str | None) -> int:
        """How many events the group has parked."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM persistent_parked WHERE stream_key = ? AND group_name = ?",
            (stream_key(stream), group),
        ).fetchone()
        return int(row[0])

    def list_parked(self, group: str, stream: str | None, limit: int | None) -> list[RecordedEvent]:
        """The group's parked events, oldest parking first."""
        rows = self._db.execute(
            "SELECT event_id, stream, type, version, position, data, metadata, content_type,"
            " recorded_at FROM persistent_parked WHERE stream_key = ? AND group_name = ?"
            " ORDER BY seq LIMIT ?",
            (stream_key(stream), group, -1 if limit is None else limit),
        ).fetchall()
        return [
            RecordedEvent(
                id=uuid.UUID(row[0]),
                stream=row[1],
                type=row[2],
                version=row[3],
                position=row[4],
                data=bytes(row[5]),
                metadata=bytes(row[6]),
                content_type=row[7],
                recorded_at=datetime.fromisoformat(row[8]),
            )
            for row in rows
        ]

    def take_parked(self, group: str, stream: str | None) -> list[RecordedEvent]:
        """Remove and return every parked event of the group, in one transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            events = self.list_parked(group, stream, None)
            db.execute(
                "DELETE FROM persistent_parked WHERE stream_key = ? AND group_name = ?",
                (stream_key(stream), group),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return events


class SQLiteGroupStorage:
    """The `GroupStorage` of the embedded store: `_Tables` on a thread of its own."""

    def __init__(self, db_path: Path) -> None:
        self._tables = _Tables(db_path)
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    async def start(self) -> None:
        """Start the thread and open the tables on it."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="persistent-tables")
        await self._call(self._tables.open)

    async def close(self) -> None:
        """Store what is queued (giving up on writes SQLite keeps refusing), then stop."""
        if self._executor is None:
            return
        self._closing = True
        executor, self._executor = self._executor, None
        executor.submit(self._tables.close)
        await asyncio.to_thread(executor.shutdown, wait=True)

    # -- the running group's writes (queued on the thread, in order) ---------------------------

    def park(self, group: str, stream: str | None, events: list[RecordedEvent]) -> None:
        """Append events to the group's parked list."""
        self._queue("park", partial(self._tables.park, group, stream, events))

    def save_checkpoint(self, group: str, stream: str | None, checkpoint: int) -> None:
        """Record that everything up to `checkpoint` (inclusive) is done."""
        self._queue("checkpoint", partial(self._tables.save_checkpoint, group, stream, checkpoint))

    def _queue(self, kind: str, write: Callable[[], None]) -> None:
        if self._executor is None:
            logger.warning("event=persistent_write_dropped kind=%s reason=closed", kind)
            return
        self._executor.submit(self._store_write, kind, write)

    def _store_write(self, kind: str, write: Callable[[], None]) -> None:
        # On the storage's thread: later calls wait behind this one, so order is kept.
        while True:
            try:
                write()
                return
            except sqlite3.Error as error:
                if self._closing:
                    logger.error("event=persistent_write_lost kind=%s error=%s", kind, error)
                    return
                # Never drop a park: it is stored before anything queued after it.
                logger.warning("event=persistent_write_failed kind=%s error=%s", kind, error)
                time.sleep(WRITE_RETRY)

    # -- definitions and queries ---------------------------------------------------------------

    async def _call(self, function: Callable[[], _T]) -> _T:
        if self._executor is None:
            raise RuntimeError("persistent-subscription tables are not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def insert_group(self, record: GroupRecord) -> bool:
        """Store a new group; False if one of that name exists."""
        return await self._call(partial(self._tables.insert_group, record))

    async def update_group(self, definition: GroupDefinition) -> None:
        """Replace a group's settings and start point; its checkpoint stays."""
        await self._call(partial(self._tables.update_group, definition))

    async def delete_group(self, group: str, stream: str | None) -> bool:
        """Remove a group and its parked events; False if it did not exist."""
        return await self._call(partial(self._tables.delete_group, group, stream))

    async def get_group(self, group: str, stream: str | None) -> GroupRecord | None:
        """One group, or None."""
        return await self._call(partial(self._tables.get_group, group, stream))

    async def list_groups(self, stream: str | None, *, every_stream: bool) -> list[GroupRecord]:
        """The groups on `stream` ($all when None), or on every target when `every_stream`."""
        return await self._call(
            partial(self._tables.list_groups, stream, every_stream=every_stream)
        )

    async def count_parked(self, group: str, stream: str | None) -> int:
        """How many events the group has parked."""
        return await self._call(partial(self._tables.count_parked, group, stream))

    async def list_parked(
        self, group: str, stream: str | None, limit: int | None
    ) -> list[RecordedEvent]:
        """The group's parked events, oldest parking first."""
        return await self._call(partial(self._tables.list_parked, group, stream, limit))

    async def take_parked(self, group: str, stream: str | None) -> list[RecordedEvent]:
        """Remove and return every parked event of the group, in one transaction."""
        return await self._call(partial(self._tables.take_parked, group, stream))
