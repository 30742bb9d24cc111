"""The snapshot store: one snapshot stream per order, holding only the newest snapshot.

Streams are named `orderSnapshot-{orderId}`: category `orderSnapshot`, so neither the projectors'
filter nor the `events` query (both select the stream prefix `order-`) ever see them. Their stream
metadata says `$maxCount` = 1, so the store keeps (EventStoreDB: scavenges down to) the newest.

Everything here is best-effort: a snapshot that cannot be read is treated as absent.
"""

from __future__ import annotations

import logging
import uuid

import orjson

from application.snapshot_shape import (
    Snapshot,
    UnusableSnapshot,
    snapshot_from_dict,
    snapshot_to_dict,
)
from domain.events import order_stream
from eventstore.port import (
    ANY,
    MARKED_VERSION,
    EventStore,
    NewEvent,
    RecordedEvent,
    WrongExpectedVersion,
)

logger = logging.getLogger(__name__)

SNAPSHOT_STREAM_PREFIX = "orderSnapshot-"
SNAPSHOT_EVENT_TYPE = "OrderSnapshot"
MAX_COUNT = "$maxCount"


def snapshot_stream(order_id: str) -> str:
    """The stream that holds the newest snapshot of one order."""
    return f"{SNAPSHOT_STREAM_PREFIX}{order_id}"


class SnapshotStore:
    """Reads and writes order snapshots through the `EventStore` port."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def load(self, order_id: str) -> Snapshot | None:
        """The newest snapshot of the order this code may trust, None when there is none."""
        records = await self._store.read_stream(snapshot_stream(order_id), backwards=True, limit=1)
        return trusted_snapshot(order_id, records[0]) if records else None

    async def save(self, snapshot: Snapshot) -> bool:
        """Store `snapshot` as the order's newest, unless a trusted one at least as new is there
        already. Returns whether it was written.

        The check and the append (expecting ANY) are not atomic: of writers racing, the last to
        append is kept, even if its snapshot is the older. That costs later loads a few more
        events, never a wrong state (a snapshot is a cache of a prefix), and the policy replaces
        it when the next due append comes."""
        order_id = snapshot.state.id
        stream = snapshot_stream(order_id)
        current = await self.load(order_id)
        if current is not None and current.version >= snapshot.version:
            return False
        metadata = await self._store.get_stream_metadata(stream)
        if metadata.get(MAX_COUNT) != 1:
            # Before the first append, so the stream never keeps more than one snapshot.
            await self._store.set_stream_metadata(stream, {**metadata, MAX_COUNT: 1})
        event = NewEvent(
            id=uuid.uuid4(),
            type=SNAPSHOT_EVENT_TYPE,
            data=orjson.dumps(snapshot_to_dict(snapshot)),
            # The version lets a marked read fetch the snapshot and its tail in one read.
            metadata=orjson.dumps(
                {"snapshotOf": order_stream(order_id), MARKED_VERSION: snapshot.version}
            ),
        )
        await self._store.append(stream, [event], ANY)
        logger.debug("event=snapshot_saved stream=%s version=%d", stream, snapshot.version)
        return True

    async def delete(self, order_id: str) -> None:
        """Forget the order's snapshots (a cache: loading then folds every event)."""
        try:
            await self._store.delete_stream(snapshot_stream(order_id))
        except WrongExpectedVersion:
            # Like EventStoreDB, the store refuses to delete a stream that never existed.
            logger.debug("event=snapshot_delete_missing order=%s", order_id)


def trusted_snapshot(order_id: str, record: RecordedEvent) -> Snapshot | None:
    """The snapshot of the order that `record` (its snapshot stream's newest event) holds, None
    when this code may not trust it."""
    try:
        if record.type != SNAPSHOT_EVENT_TYPE:
            raise UnusableSnapshot(f"event type {record.type!r}")
        snapshot = snapshot_from_dict(orjson.loads(record.data))
        if snapshot.state.id != order_id:
            raise UnusableSnapshot(f"snapshot of order {snapshot.state.id!r}")
    except (UnusableSnapshot, orjson.JSONDecodeError) as reason:
        # Stale snapshots are expected after a deploy that changed the state's shape.
        logger.info(
            "event=snapshot_ignored stream=%s version=%d reason=%s",
            record.stream,
            record.version,
            reason,
        )
        return None
    return snapshot
