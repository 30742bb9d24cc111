"""Keyed placements found again: a retry of `placeOrder` with an idempotency key gets the original
placement's `Accepted`, whatever happened to the order since.

The store's own idempotence answers most retries (the keyed event ids are byte-for-byte the same).
These reads answer the rest: a store that refuses a repeated first event once the stream moved on,
and orders placed under the older public id derivation (`application.idempotency`'s legacy ids).
"""

from __future__ import annotations

import orjson

from application.codec import decode_record
from application.idempotency import IdempotencyIds, legacy_event_id, legacy_order_id
from application.written import Accepted, placed_by
from domain.commands import PlaceOrder
from domain.events import order_stream
from eventstore.port import EventStore


class KeyedPlacements:
    """Finds the placement a key made, in `store`, under the deployment's `ids`."""

    def __init__(self, store: EventStore, ids: IdempotencyIds) -> None:
        self._store = store
        self._ids = ids

    async def original(self, order_id: str, key: str, customer_id: str) -> Accepted | None:
        """The result of the append that placed the order under `key` for `customer_id`, if it
        did (None: someone else placed it, or nobody did)."""
        first = await self._store.read_stream(order_stream(order_id), from_version=1, limit=1)
        if not first:
            return None
        placed = first[0]
        keyed = placed.id == self._ids.event_ids(1, order_id, key, customer_id)[0]
        # The legacy ids' encoding is ambiguous across customers: the order must be theirs too.
        legacy = placed.id == legacy_event_id(order_id, key, customer_id) and (
            _placed_for(placed.data) == customer_id
        )
        if not (keyed or legacy):
            return None
        # placeOrder appends exactly one event, so the original append ended at version 1.
        return Accepted(
            order_id=order_id,
            version=1,
            position=placed.position,
            event_ids=(placed.id,),
            order=placed_by(decode_record(placed)),
        )

    async def legacy(self, command: PlaceOrder, key: str) -> Accepted | None:
        """The original result of a placement under `key` that took its order id from the
        public derivation, when `command`'s id is the one the key derives now."""
        customer_id = command.customer_id
        if command.order_id != self._ids.new_order_id(customer_id, key):
            return None  # the client named the order: the append and `original` suffice
        return await self.original(legacy_order_id(customer_id, key), key, customer_id)


def _placed_for(data: bytes) -> object:
    """The customer an `OrderPlaced` event's data names (any schema version)."""
    try:
        decoded = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return decoded.get("customerId") if isinstance(decoded, dict) else None
