"""Idempotency keys: the ids a keyed `placeOrder` proposes, the same on every retry.

With an idempotency key the order id (when not given) and every event id derive from the key and
the customer, so a retry proposes byte-for-byte the same append and the store's own idempotence
answers it with the original result. Another customer sending the same key (and order id)
proposes other event ids: its append conflicts with the existing order instead of replaying that
order's `CommandAccepted`. Without a key every id is random (`application.ids`).
"""

from __future__ import annotations

import uuid

from application.ids import random_uuid

IDEMPOTENCY_NAMESPACE = uuid.UUID("5b0f3c1e-7f0a-4f43-9d6e-2c1a8d0f6b21")
"""uuid5 namespace for ids derived from idempotency keys. Never change it: retries of commands
accepted before a change would no longer match."""


def new_order_id(customer_id: str, idempotency_key: str | None) -> str:
    """An id for an order placed without one: derived from the key (scoped to the customer, so two
    customers' keys never collide) when there is one, else random."""
    if idempotency_key is None:
        return str(random_uuid())
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"order:{customer_id}:{idempotency_key}"))


def event_ids(
    count: int, order_id: str, idempotency_key: str | None, customer_id: str | None = None
) -> list[uuid.UUID]:
    """The ids of a command's `count` events: derived from the key, the placing customer and the
    order when there is a key, else random."""
    if idempotency_key is None:
        return [random_uuid() for _ in range(count)]
    scope = f"{customer_id}:{idempotency_key}:{order_id}"
    return [uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{scope}:{i}") for i in range(count)]
