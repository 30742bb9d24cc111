"""Loading orders from their streams: the one place the write side reads an aggregate.

Every load pages through the stream (a long-lived order can hold thousands of events) and folds the
decoded events. With snapshots a fold starts from the newest trusted snapshot and reads
only the events after it; no caller has to change, and no result depends on a snapshot existing.

Loading the current state reads the snapshot and only the events from the snapshot's own (which
proves the stream is the one the snapshot saw) onwards, in one read where the store can: the
snapshot event's metadata names the version it covers, so the store needs nothing from here to
know where the events start. A long order costs about what a short one does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from application.codec import DecodedEvent, decode_event, decode_record
from application.snapshot_shape import Snapshot
from application.snapshot_store import SnapshotStore, snapshot_stream, trusted_snapshot
from application.written import WrittenOrder, placed_by
from domain.events import OrderEvent, order_stream
from domain.order import OrderState, fold
from eventstore.marked import read_from_mark
from eventstore.port import (
    AppendResult,
    EventStore,
    EventStoreError,
    MarkedRead,
    MarkedReads,
    NewEvent,
    RecordedEvent,
    StoreUnavailable,
    expect_version,
)
from metrics.instruments import APPEND_DURATION
from telemetry.tracing import span

logger = logging.getLogger(__name__)

PAGE_SIZE = 500
"""Events per stream read while folding: bounds memory per load, not the stream's length."""
FIRST_PAGE = 64
"""Events read with the snapshot: more than a snapshot's tail under the default policy, and few
enough for a store to read them without leaving the event loop (the embedded one does)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedOrder:
    """An order as read from its stream.

    `version` is the stream's version (the number of events read), which is what an append must
    expect; `state.version` agrees with it. `state` is None when the stream holds no order.
    `snapshot_version` is the version of the trusted snapshot the load started from (0: none), so
    the snapshot policy can tell how many events have piled up since. `placed_at` is the first
    event's `occurredAt` when the load read it (not from a snapshot).
    """

    state: OrderState | None
    version: int
    snapshot_version: int = 0
    placed_at: datetime | None = None


NEW_ORDER = LoadedOrder(state=None, version=0)
"""An order not placed yet: what a placement is decided on."""


class Orders(Protocol):
    """The orders the command handler decides on and appends to: `OrderRepository`, or a
    decorator around it (`application.recent_orders`)."""

    async def load(self, order_id: str) -> LoadedOrder:
        """The order to decide on and the version its append must expect."""
        ...

    def append(
        self, order_id: str, expected: int, events: Sequence[NewEvent], after: LoadedOrder | None
    ) -> Awaitable[AppendResult]:
        """Append `events` if the order is still at version `expected`, else raise
        `WrongExpectedVersion`. `after` is the order as the events leave it (None: not known,
        as for a keyed placement the store may answer with an earlier one's result)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class _Folded:
    """A fold's result plus what a snapshot of it must record."""

    state: OrderState | None
    version: int
    snapshot_version: int
    last_event_id: str | None
    max_occurred_at: datetime | None
    placed_at: datetime | None

    def loaded(self) -> LoadedOrder:
        return LoadedOrder(
            state=self.state,
            version=self.version,
            snapshot_version=self.snapshot_version,
            placed_at=self.placed_at,
        )


class OrderRepository:
    """Reads orders from an `EventStore`: current state, state in the past, raw history.

    With a `SnapshotStore`, folds start from the order's newest trusted snapshot and read only the
    events after it; results are the same with or without one (snapshots are a cache).
    """

    def __init__(self, store: EventStore, snapshots: SnapshotStore | None = None) -> None:
        self._store = store
        self._snapshots = snapshots
        # Asked once: checking a runtime Protocol walks its members, a twentieth of a load.
        self._marked_reads = store if isinstance(store, MarkedReads) else None

    async def _read_from_mark(self, order_id: str) -> MarkedRead:
        """The order's newest snapshot event and the first page from the version it names."""
        mark_stream, stream = snapshot_stream(order_id), order_stream(order_id)
        if self._marked_reads is not None:
            return await self._marked_reads.read_from_mark(mark_stream, stream, limit=FIRST_PAGE)
        return await read_from_mark(self._store, mark_stream, stream, limit=FIRST_PAGE)

    async def _pages(
        self, order_id: str, after_version: int = 0, first: list[RecordedEvent] | None = None
    ) -> AsyncGenerator[list[RecordedEvent], None]:
        """Every event of the order with version > `after_version`, oldest first, in pages.
        `first`, when given, is the first page, already read."""
        stream = order_stream(order_id)
        next_version = after_version + 1
        if first is not None:
            if first:
                yield first
            if len(first) < FIRST_PAGE:
                return
            next_version = first[-1].version + 1
        while True:
            records = await self._store.read_stream(
                stream, from_version=next_version, limit=PAGE_SIZE
            )
            if records:
                yield records
            if len(records) < PAGE_SIZE:
                return
            next_version = records[-1].version + 1

    async def load(self, order_id: str) -> LoadedOrder:
        """The order's current state and the version an append must expect, read from the
        store."""
        return (await self._fold(order_id)).loaded()

    async def append(
        self, order_id: str, expected: int, events: Sequence[NewEvent], after: LoadedOrder | None
    ) -> AppendResult:
        """Append `events` to the order's stream if it is at version `expected` (0: no stream).
        `after` is for decorators; the store holds what was appended."""
        started = time.perf_counter()
        with span("append"):
            stream, expect = order_stream(order_id), expect_version(expected)
            result = await self._store.append(stream, events, expect)
        APPEND_DURATION.observe(time.perf_counter() - started)
        return result

    async def snapshot(self, order_id: str) -> Snapshot | None:
        """A snapshot of the order's current state (None: no such order). Not stored."""
        folded = await self._fold(order_id, timed=True)
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

    async def placed(self, order_id: str) -> WrittenOrder | None:
        """The order as its first event placed it (None: no such order). Reads one event."""
        records = await self._store.read_stream(order_stream(order_id), from_version=1, limit=1)
        return placed_by(decode_record(records[0])) if records else None

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
        except StoreUnavailable:
            raise  # an outage (or a deadline passed) fails the load: reading on would wait again
        except EventStoreError as error:
            # A cache that cannot be read is a cache miss, never a failed load.
            logger.warning("event=snapshot_read_failed order=%s error=%r", order_id, error)
            return None
        return _usable(snapshot, until_version=until_version, as_of=as_of)

    async def _start_with_page(
        self, order_id: str, *, until_version: int | None, as_of: datetime | None
    ) -> tuple[Snapshot | None, list[RecordedEvent] | None]:
        """The snapshot the fold may start from and the first page after it, in one read where
        the store can (None for the page: not read, or not from where the fold starts)."""
        if self._snapshots is None:
            return None, None
        try:
            read = await self._read_from_mark(order_id)
        except StoreUnavailable:
            raise  # the store is down or past its deadline: the tail could not be read either
        except EventStoreError:
            # The reads one at a time, so a snapshot that cannot be read stays a cache miss.
            snapshot = await self._start(order_id, until_version=until_version, as_of=as_of)
            return snapshot, None
        snapshot = None if read.mark is None else trusted_snapshot(order_id, read.mark)
        snapshot = _usable(snapshot, until_version=until_version, as_of=as_of)
        if read.from_version != _first_version(snapshot):
            # Rare: a snapshot this load may not start from (untrusted, too new for it), one
            # whose metadata names no version (written by older code) or another version than
            # its own: the fold reads from where it starts itself.
            return snapshot, None
        return snapshot, read.events

    async def _fold(
        self,
        order_id: str,
        *,
        until_version: int | None = None,
        as_of: datetime | None = None,
        timed: bool = False,
    ) -> _Folded:
        snapshot, first = await self._start_with_page(
            order_id, until_version=until_version, as_of=as_of
        )
        return await self._fold_paged(
            order_id, snapshot, first, until_version=until_version, as_of=as_of, timed=timed
        )

    async def _fold_paged(
        self,
        order_id: str,
        snapshot: Snapshot | None,
        first: list[RecordedEvent] | None = None,
        *,
        until_version: int | None = None,
        as_of: datetime | None = None,
        timed: bool,
    ) -> _Folded:
        """Fold the stream from `snapshot` (None: from the start), falling back to a fold from
        the start when the stream does not hold the snapshot's event. `first` is the first page
        after `snapshot`, when already read."""
        if snapshot is not None:
            folded = await self._fold_from(order_id, snapshot, first, until_version, as_of, timed)
            if folded is not None:
                return folded
            first = None  # read from the snapshot on: not the start of the stream
        folded = await self._fold_from(order_id, None, first, until_version, as_of, timed)
        assert folded is not None  # only a snapshot can be distrusted
        return folded

    async def _fold_from(
        self,
        order_id: str,
        snapshot: Snapshot | None,
        first: list[RecordedEvent] | None,
        until_version: int | None,
        as_of: datetime | None,
        timed: bool,
    ) -> _Folded | None:
        """Fold the events after `snapshot` (None: all of them) onto it. None when the stream
        does not hold the event the snapshot was taken at (deleted and written again, or
        truncated): then the snapshot must not be trusted."""
        fold = _Fold(order_id, snapshot, until_version=until_version, as_of=as_of, timed=timed)
        if first is not None and len(first) < FIRST_PAGE:
            # The first page is the whole tail (a snapshot load, nearly always): no paging.
            if not fold.add(first):
                _distrust(order_id, snapshot)
                return None
        else:
            after = _first_version(snapshot) - 1
            async with aclosing(self._pages(order_id, after, first)) as pages:
                async for page in pages:
                    if not fold.add(page):
                        _distrust(order_id, snapshot)
                        return None
                    if fold.done:
                        break
        if not fold.verified:
            _distrust(order_id, fold.snapshot)
            return None
        return fold.result()


def _usable(
    snapshot: Snapshot | None, *, until_version: int | None, as_of: datetime | None
) -> Snapshot | None:
    """`snapshot`, if a fold up to `until_version` and as of `as_of` may start from it."""
    if snapshot is None:
        return None
    if until_version is not None and snapshot.version > until_version:
        return None
    if as_of is not None and snapshot.max_occurred_at > as_of:
        return None
    return snapshot


def _first_version(snapshot: Snapshot | None) -> int:
    """The first version a fold from `snapshot` reads. From a snapshot it reads the snapshot's
    own last event too: that proves the stream is the one the snapshot saw."""
    return 1 if snapshot is None else max(snapshot.version, 1)


class _Fold:
    """One fold in progress: events go in page by page, oldest first.

    Decoding stays lazy where the fold does not need it: the id of only the last event folded is
    kept, and `occurredAt` is parsed only for time travel (`as_of`) or a snapshot (`timed`).
    """

    def __init__(
        self,
        order_id: str,
        snapshot: Snapshot | None,
        *,
        until_version: int | None = None,
        as_of: datetime | None = None,
        timed: bool,
    ) -> None:
        self.order_id = order_id
        self.snapshot = snapshot
        self.until_version = until_version
        self.as_of = as_of
        self.timed = timed or as_of is not None
        self.state: OrderState | None = None if snapshot is None else snapshot.state
        self.version = 0 if snapshot is None else snapshot.version
        self.verified = snapshot is None
        self.done = False
        self._last: RecordedEvent | None = None
        self._trusted = True
        self._max_occurred_at = None if snapshot is None else snapshot.max_occurred_at
        self._placed_at: datetime | None = None

    def add(self, records: Sequence[RecordedEvent]) -> bool:
        """Fold `records`; False when they prove the snapshot untrustworthy."""
        self._trusted = True
        # One `fold` per page builds one state, not one per event; the events are decoded as it
        # takes them, so everything happens in the order a fold event by event would do it.
        self.state = fold(self._events(records), self.state)
        return self._trusted

    def _events(self, records: Sequence[RecordedEvent]) -> Iterator[OrderEvent]:
        snapshot = self.snapshot
        for record in records:
            if self.done:
                return
            if snapshot is not None and record.version <= snapshot.version:
                if record.version < snapshot.version:
                    continue  # a page that starts before the snapshot (the newest events)
                if str(record.id) != snapshot.last_event_id:
                    self._trusted = False
                    return
                self.verified = True
                continue
            if snapshot is not None and not self.verified:
                # The snapshot's own event is hidden (truncated stream): it cannot be checked.
                self._trusted = False
                return
            if self.until_version is not None and record.version > self.until_version:
                self.done = True
                return
            if self.timed or record.version == 1:
                decoded = decode_record(record)
                if record.version == 1:
                    self._placed_at = decoded.occurred_at
                occurred_at = decoded.occurred_at
                if self.as_of is not None and occurred_at > self.as_of:
                    # A stream is a history: the state as of a moment is a prefix of it.
                    self.done = True
                    return
                if self._max_occurred_at is None or occurred_at > self._max_occurred_at:
                    self._max_occurred_at = occurred_at
                event = decoded.event
            else:
                event = decode_event(record)  # untimed: the metadata is not needed
            self.version = record.version
            self._last = record
            if event is not None:
                yield event

    def result(self) -> _Folded:
        """What the events so far fold to."""
        state = self.state
        if state is not None and state.version != self.version:
            # Unknown event types (written by another service) advance the stream, not the fold.
            state = replace(state, version=self.version)
        if self._last is not None:
            last_event_id: str | None = str(self._last.id)
        else:
            last_event_id = None if self.snapshot is None else self.snapshot.last_event_id
        return _Folded(
            state=state,
            version=self.version,
            snapshot_version=0 if self.snapshot is None else self.snapshot.version,
            last_event_id=last_event_id,
            max_occurred_at=self._max_occurred_at if self.timed else None,
            placed_at=self._placed_at,
        )


def _distrust(order_id: str, snapshot: Snapshot | None) -> None:
    if snapshot is not None:
        logger.info(
            "event=snapshot_mismatch order=%s version=%d reason=stream_changed",
            order_id,
            snapshot.version,
        )
