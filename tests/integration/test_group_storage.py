"""The embedded store's group tables keep SQLite off the event loop: a park made while another
connection holds the file's write lock returns at once, the loop goes on, and the park is stored
(in order, before what was queued after it) once the lock is released."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

from eventstore.embedded.persistent_tables import SQLiteGroupStorage
from eventstore.persistent.records import GroupRecord
from eventstore.port import RecordedEvent, SubscriptionSettings


def recorded(version: int) -> RecordedEvent:
    return RecordedEvent(
        id=uuid.uuid4(),
        stream="order-1",
        type="Tested",
        version=version,
        position=version,
        data=b"{}",
        metadata=b"{}",
        recorded_at=datetime.now(UTC),
    )


async def test_a_park_under_a_held_write_lock_neither_blocks_the_loop_nor_is_lost(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.sqlite3"
    storage = SQLiteGroupStorage(path)
    await storage.start()
    try:
        record = GroupRecord(
            group="g",
            stream=None,
            settings=SubscriptionSettings(),
            start_after=None,
            checkpoint=None,
        )
        assert await storage.insert_group(record)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the file
        try:
            storage.park("g", None, [recorded(1)])
            storage.save_checkpoint("g", None, 1)
            count = asyncio.ensure_future(storage.count_parked("g", None))
            ticks = 0
            for _ in range(5):  # the loop keeps running while SQLite waits for the lock
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks == 5
            assert not count.done()  # queued behind the park, which waits for the lock
        finally:
            other.execute("COMMIT")
            other.close()
        assert await asyncio.wait_for(count, 15) == 1
        stored = await storage.get_group("g", None)
        assert stored is not None
        assert stored.checkpoint == 1  # the checkpoint queued after the park, stored after it
    finally:
        await storage.close()
