"""Loading orders from their streams: the one place the write side reads an aggregate.

Every load pages through the stream (a long-lived order can hold thousands of events) and folds the
decoded events. With snapshots (issue 5) a fold starts from the newest trusted snapshot and reads
only the events after it; no caller has to change, and no result depends on a snapshot existing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, replace
from datetime import datetime

from domain.events import order_stream
from domain.order import OrderState, evolve
from domain.snapshots import Snapshot
from eventstore.codec import DecodedEvent, decode_record
from eventstore.port import EventStore, EventStoreError
from eventstore.snapshots import SnapshotStore

logger = logging.getLogger(__name__)

PAGE_SIZE = 500
"""Events per stream read while folding: bounds memory per load, not the stream's length."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedOrder:
    """An order as read from its stream.

    `version` is the stream's version (the number of events read), which is what an append must
    expect; `state.version` agrees with it. `state` is None when the stream holds no order.
    `snapshot_version` is the version of the trusted snapshot the load started from (0: none), so
    the snapshot policy can tell how many events have piled up since.
    """

    state: OrderState | None
    version: int
    snapshot_version: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Folded:
    """A fold's result plus what a snapshot of it must record."""

    state: OrderState | None
    version: int
    snapshot_version: int
    last_event_id: str | None
    max_occurred_at: datetime | None

    def loaded(self) -> LoadedOrder:
        return LoadedOrder(
            state=self.state, version=self.version, snapshot_version=self.snapshot_version
        )


class OrderRepository:
    """Reads orders from an `EventStore`: current state, state in the past, raw history.

    With a `SnapshotStore`, folds start from the order's newest trusted snapshot and read only the
    events after it; results are the same with or without one (snapshots are a cache).
    """

    def __init__(self, store: EventStore, snapshots: SnapshotStore | None = None) -> None:
        self._store = store
        self._snapshots = snapshots

    async def _pages(
        self, order_id: str, after_version: int = 0
    ) -> AsyncGenerator[DecodedEvent, None]:
        """Every decoded event of the order with version > `after_version`, oldest first."""
        stream = order_stream(order_id)
        next_version = after_version + 1
        while True:
            records = await self._store.read_stream(
                stream, from_version=next_version, limit=PAGE_SIZE
            )
            for record in records:
                yield decode_record(record)
            if len(records) < PAGE_SIZE:
                return
            next_version = records[-1].version + 1

    async def load(self, order_id: str) -> LoadedOrder:
        """The order's current state and the version an append must expect."""
        return (await self._fold(order_id)).loaded()

    async def snapshot(self, order_id: str) -> Snapshot | None:
        """A snapshot of the order's current state (None: no such order). Not stored."""
        folded = await self._fold(order_id)
        if folded.state is None or folded.last_event_id is None or folded.max_occurred_at is None:
            return None
        return Snapshot(
            state=folded.state,
            version=folded.version,
            last_event_id=folded.last_event_id,
            max_occurred_at=folded.max_occurred_at,
        )

    async def state_at(
        self, order_id: str, *, version: int | None = None, as_of: datetime | None = None
    ) -> LoadedOrder | None:
        """The order as it was at `version` and/or at the moment `as_of` (events whose occurredAt
        is not after it). None when the order did not exist then, or never reached `version`."""
        if version is not None and version < 1:
            return None
        folded = await self._fold(order_id, until_version=version, as_of=as_of)
        if folded.state is None or (version is not None and folded.version < version):
            return None
        return folded.loaded()

    async def history(
        self, order_id: str, *, from_version: int = 0, limit: int = 100
    ) -> list[DecodedEvent]:
        """Up to `limit` decoded events with version > `from_version`, oldest first."""
        if limit <= 0:
            return []
        records = await self._store.read_stream(
            order_stream(order_id), from_version=max(from_version, 0) + 1, limit=limit
        )
        return [decode_record(record) for record in records]

    async def customer_of(self, order_id: str) -> str | None:
        """Who placed the order (None: no such order). Reads one event: ownership never changes."""
        records = await self._store.read_stream(order_stream(order_id), from_version=1, limit=1)
        if not records:
            return None
        decoded = decode_record(records[0])
        customer = decoded.data.get("customerId")
        return customer if isinstance(customer, str) else None

    async def _start(
        self, order_id: str, *, until_version: int | None, as_of: datetime | None
    ) -> Snapshot | None:
        """The newest trusted snapshot the fold may start from, if any."""
        if self._snapshots is None:
            return None
        try:
            snapshot = await self._snapshots.load(order_id)
        except EventStoreError as error:
            # A cache that cannot be read is a cache miss, never a failed load.
            logger.warning("event=snapshot_read_failed order=%s error=%r", order_id, error)
            return None
        if snapshot is None:
            return None
        if until_version is not None and snapshot.version > until_version:
            return None
        if as_of is not None and snapshot.max_occurred_at > as_of:
            return None
        return snapshot

    async def _fold(
        self,
        order_id: str,
        *,
        until_version: int | None = None,
        as_of: datetime | None = None,
    ) -> _Folded:
        snapshot = await self._start(order_id, until_version=until_version, as_of=as_of)
        if snapshot is not None:
            folded = await self._fold_from(order_id, snapshot, until_version, as_of)
            if folded is not None:
                return folded
        return await self._fold_from(order_id, None, until_version, as_of) or _Folded(
            state=None, version=0, snapshot_version=0, last_event_id=None, max_occurred_at=None
        )

    async def _fold_from(
        self,
        order_id: str,
        snapshot: Snapshot | None,
        until_version: int | None,
        as_of: datetime | None,
    ) -> _Folded | None:
        """Fold the events after `snapshot` (None: all of them) onto it. None when the stream
        does not hold the event the snapshot was taken at (deleted and written again, or
        truncated): then the snapshot must not be trusted."""
        state = None if snapshot is None else snapshot.state
        version = 0 if snapshot is None else snapshot.version
        last_event_id = None if snapshot is None else snapshot.last_event_id
        max_occurred_at = None if snapshot is None else snapshot.max_occurred_at
        verified = snapshot is None
        # From a snapshot, read its own last event too: it proves the stream is the one it saw.
        async with aclosing(self._pages(order_id, max(version - 1, 0))) as events:
            async for decoded in events:
                record = decoded.record
                if snapshot is not None and record.version <= snapshot.version:
                    if record.version != snapshot.version or str(record.id) != last_event_id:
                        return self._distrust(order_id, snapshot)
                    verified = True
                    continue
                if until_version is not None and record.version > until_version:
                    break
                occurred_at = decoded.occurred_at
                if as_of is not None and occurred_at > as_of:
                    # A stream is a history: the state as of a moment is a prefix of it.
                    break
                if decoded.event is not None:
                    state = evolve(state, decoded.event)
                version = record.version
                last_event_id = str(record.id)
                if max_occurred_at is None or occurred_at > max_occurred_at:
                    max_occurred_at = occurred_at
        if snapshot is not None and not verified:
            return self._distrust(order_id, snapshot)
        if state is not None and state.version != version:
            # Unknown event types (written by another service) advance the stream, not the fold.
            state = replace(state, version=version)
        return _Folded(
            state=state,
            version=version,
            snapshot_version=0 if snapshot is None else snapshot.version,
            last_event_id=last_event_id,
            max_occurred_at=max_occurred_at,
        )

    @staticmethod
    def _distrust(order_id: str, snapshot: Snapshot) -> None:
        logger.info(
            "event=snapshot_mismatch order=%s version=%d (the stream changed under it)",
            order_id,
            snapshot.version,
        )
        return None
