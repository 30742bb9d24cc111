"""Loading orders from their streams: the one place the write side reads an aggregate.

Every load pages through the stream (a long-lived order can hold thousands of events) and folds the
decoded events. Snapshots (issue 5) plug in here: `load` will start from the newest snapshot and
read only the events after it, and no caller has to change.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, replace
from datetime import datetime

from domain.events import order_stream
from domain.order import OrderState, evolve
from eventstore.codec import DecodedEvent, decode_record
from eventstore.port import EventStore

logger = logging.getLogger(__name__)

PAGE_SIZE = 500
"""Events per stream read while folding: bounds memory per load, not the stream's length."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedOrder:
    """An order as read from its stream.

    `version` is the stream's version (the number of events read), which is what an append must
    expect; `state.version` agrees with it. `state` is None when the stream holds no order.
    """

    state: OrderState | None
    version: int


class OrderRepository:
    """Reads orders from an `EventStore`: current state, state in the past, raw history."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

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
        return await self._fold(order_id)

    async def state_at(
        self, order_id: str, *, version: int | None = None, as_of: datetime | None = None
    ) -> LoadedOrder | None:
        """The order as it was at `version` and/or at the moment `as_of` (events whose occurredAt
        is not after it). None when the order did not exist then, or never reached `version`."""
        if version is not None and version < 1:
            return None
        loaded = await self._fold(order_id, until_version=version, as_of=as_of)
        if loaded.state is None or (version is not None and loaded.version < version):
            return None
        return loaded

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

    async def _fold(
        self,
        order_id: str,
        *,
        until_version: int | None = None,
        as_of: datetime | None = None,
    ) -> LoadedOrder:
        state: OrderState | None = None
        version = 0
        async with aclosing(self._pages(order_id)) as events:
            async for decoded in events:
                if until_version is not None and decoded.record.version > until_version:
                    break
                if as_of is not None and decoded.occurred_at > as_of:
                    # A stream is a history: the state as of a moment is a prefix of it.
                    break
                if decoded.event is not None:
                    state = evolve(state, decoded.event)
                else:
                    logger.debug(
                        "event=unknown_event_type stream=%s type=%s version=%d",
                        decoded.record.stream,
                        decoded.record.type,
                        decoded.record.version,
                    )
                version = decoded.record.version
        if state is not None and state.version != version:
            # Unknown event types (written by another service) advance the stream, not the fold.
            state = replace(state, version=version)
        return LoadedOrder(state=state, version=version)
