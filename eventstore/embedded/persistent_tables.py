"""Durable state of the embedded persistent subscriptions: group definitions, checkpoints and
parked events, in their own tables of the store's SQLite file.

Parked events live in a table of ours rather than in `$persistentsubscription-...-parked` streams:
EventStoreDB hides those streams from `$all`, and keeping them out of the log spares every `$all`
reader that special case.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from eventstore.port import (
    ConsumerStrategy,
    EventFilter,
    RecordedEvent,
    SubscriptionSettings,
)

ALL_KEY = "$all"
"""The `stream_key` of groups on the global log (no real stream can be called that)."""

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


def stream_key(stream: str | None) -> str:
    """The key a group's target is stored under."""
    return ALL_KEY if stream is None else stream


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRecord:
    """A persisted group: its settings, where it starts (exclusive) and its checkpoint."""

    group: str
    stream: str | None
    settings: SubscriptionSettings
    start_after: int | None  # resolved at creation: None = from the very start
    checkpoint: int | None  # everything up to and including this is done


def settings_to_json(settings: SubscriptionSettings) -> bytes:
    """Settings as stored."""
    return orjson.dumps(dataclasses.asdict(settings))


def settings_from_json(raw: bytes | str) -> SubscriptionSettings:
    """Settings as stored, back."""
    value: dict[str, Any] = orjson.loads(raw)
    raw_filter = value.pop("filter")
    return SubscriptionSettings(
        **{
            **value,
            "consumer_strategy": ConsumerStrategy(value["consumer_strategy"]),
            "filter": EventFilter(
                event_types=tuple(raw_filter["event_types"]),
                stream_prefixes=tuple(raw_filter["stream_prefixes"]),
                include_system=bool(raw_filter["include_system"]),
            ),
        }
    )


class PersistentTables:
    """Our own connection to the store's SQLite file. Every call is one short transaction on the
    event loop's thread: they touch a handful of rows, so a thread hop would cost more."""

    def __init__(self, db_path: Path) -> None:
        self._db_path = db_path
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Connect and create the tables if needed."""
        conn = sqlite3.connect(self._db_path, timeout=10.0, isolation_level=None)
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
            "INSERT OR IGNORE INTO persistent_groups"
            " (stream_key, group_name, settings, start_after, checkpoint) VALUES (?, ?, ?, ?, ?)",
            (
                stream_key(record.stream),
                record.group,
                settings_to_json(record.settings).decode(),
                record.start_after,
                record.checkpoint,
            ),
        )
        return cursor.rowcount == 1

    def update_group(
        self,
        group: str,
        stream: str | None,
        settings: SubscriptionSettings,
        start_after: int | None,
    ) -> None:
        """Replace a group's settings and start point; its checkpoint stays."""
        self._db.execute(
            "UPDATE persistent_groups SET settings = ?, start_after = ?"
            " WHERE stream_key = ? AND group_name = ?",
            (settings_to_json(settings).decode(), start_after, stream_key(stream), group),
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
            "SELECT settings, start_after, checkpoint FROM persistent_groups"
            " WHERE stream_key = ? AND group_name = ?",
            (stream_key(stream), group),
        ).fetchone()
        if row is None:
            return None
        return GroupRecord(
            group=group,
            stream=stream,
            settings=settings_from_json(row[0]),
            start_after=row[1],
            checkpoint=row[2],
        )

    def list_groups(self, stream: str | None, *, every_stream: bool) -> list[GroupRecord]:
        """The groups on `stream` ($all when None), or on every target when `every_stream`."""
        sql = (
            "SELECT stream_key, group_name, settings, start_after, checkpoint"
            " FROM persistent_groups"
        )
        params: tuple[str, ...] = ()
        if not every_stream:
            sql += " WHERE stream_key = ?"
            params = (stream_key(stream),)
        rows = self._db.execute(sql + " ORDER BY stream_key, group_name", params).fetchall()
        return [
            GroupRecord(
                group=row[1],
                stream=None if row[0] == ALL_KEY else row[0],
                settings=settings_from_json(row[2]),
                start_after=row[3],
                checkpoint=row[4],
            )
            for row in rows
        ]

    def save_checkpoint(self, group: str, stream: str | None, checkpoint: int) -> None:
        """Record that everything up to `checkpoint` (inclusive) is done."""
        self._db.execute(
            "UPDATE persistent_groups SET checkpoint = ? WHERE stream_key = ? AND group_name = ?",
            (checkpoint, stream_key(stream), group),
        )

    def park(self, group: str, stream: str | None, events: list[RecordedEvent]) -> None:
        """Append events to the group's parked list."""
        key = stream_key(stream)
        self._db.executemany(
            "INSERT INTO persistent_parked (stream_key, group_name, event_id, stream, type,"
            " version, position, data, metadata, content_type, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    key,
                    group,
                    str(e.id),
                    e.stream,
                    e.type,
                    e.version,
                    e.position,
                    e.data,
                    e.metadata,
                    e.content_type,
                    e.recorded_at.isoformat(),
                )
                for e in events
            ],
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
