"""The inventory's own state in SQLite: reservations per product and per order line, the ids of
the events already applied, and the topic offsets it has consumed up to.

An event's changes, its id and the next offset commit in one transaction, so a crash anywhere
leaves the three agreeing: on restart the consumer seeks to the stored offsets, and an event it
sees again (the relay publishes at least once) is recognised by its id and only moves the offset.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from examples.inventory.reservations import changes_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS reserved (
    product_id TEXT PRIMARY KEY,
    qty        INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS order_lines (
    order_id   TEXT NOT NULL,
    product_id TEXT NOT NULL,
    qty        INTEGER NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE TABLE IF NOT EXISTS applied (
    event_id TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS offsets (
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


class InventoryStore:
    """Reservations and consumer offsets in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def next_offset(self, topic: str, partition: int) -> int | None:
        """Where to resume a partition: None when this service never consumed it."""
        row = self._db.execute(
            "SELECT next_offset FROM offsets WHERE topic = ? AND partition = ?",
            (topic, partition),
        ).fetchone()
        return None if row is None else int(row[0])

    def apply(self, topic: str, partition: int, offset: int, envelope: Mapping[str, Any]) -> bool:
        """Apply one record and move the partition's offset past it, atomically. False when
        the event was applied before (a redelivery): only the offset moves."""
        event_id = str(envelope["eventId"])
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            fresh = (
                db.execute("INSERT OR IGNORE INTO applied VALUES (?)", (event_id,)).rowcount == 1
            )
            if fresh:
                order_id = str(envelope["orderId"])
                held = dict(
                    db.execute(
                        "SELECT product_id, qty FROM order_lines WHERE order_id = ?", (order_id,)
                    ).fetchall()
                )
                for change in changes_of(envelope, held):
                    db.execute(
                        "INSERT INTO reserved VALUES (?, ?) ON CONFLICT(product_id) "
                        "DO UPDATE SET qty = qty + excluded.qty",
                        (change.product_id, change.qty),
                    )
                    db.execute(
                        "INSERT INTO order_lines VALUES (?, ?, ?) "
                        "ON CONFLICT(order_id, product_id) DO UPDATE SET qty = qty + excluded.qty",
                        (change.order_id, change.product_id, change.qty),
                    )
                db.execute("DELETE FROM order_lines WHERE order_id = ? AND qty = 0", (order_id,))
            db.execute(
                "INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT(topic, partition) "
                "DO UPDATE SET next_offset = excluded.next_offset",
                (topic, partition, offset + 1),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return fresh

    def reservations(self) -> dict[str, int]:
        """Reserved quantity per product (products with nothing reserved left out)."""
        rows = self._db.execute("SELECT product_id, qty FROM reserved WHERE qty != 0").fetchall()
        return {str(product): int(qty) for product, qty in rows}

    def applied_count(self) -> int:
        """How many distinct events were applied."""
        return int(self._db.execute("SELECT count(*) FROM applied").fetchone()[0])
