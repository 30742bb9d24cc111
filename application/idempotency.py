"""Idempotency keys: the ids a keyed `placeOrder` proposes, the same on every retry.

With an idempotency key the order id (when not given) and every event id derive from the key and
the customer, so a retry proposes byte-for-byte the same append and the store's own idempotence
answers it with the original result. Another customer sending the same key (and order id)
proposes other event ids: its append conflicts with the existing order instead of replaying that
order's `CommandAccepted`. Without a key every id is random (`application.ids`).

The derivation is keyed: HMAC-SHA256 under the deployment's secret (`IdempotencyIds`), over an
unambiguous encoding of its parts (a JSON array, so customer `alice` with key `x:k` and customer
`alice:x` with key `k` never meet). Without the secret nobody can compute the id a customer's
keyed placement will take, so nobody can place an order under it first (squatting) or probe
whether a guessable key was used. The secret is the deployment's, shared by all its processes and
kept across restarts (`application.idempotency_secret`).

Orders placed before the keyed derivation took their ids from a public uuid5 derivation
(`legacy_order_id`, `legacy_event_id`); a retry of one of those still finds it, through these.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid

import orjson

from application.ids import random_uuid

SECRET_BYTES = 32
"""The size of a generated secret: HMAC-SHA256's block of security."""

_VERSION_AND_VARIANT = (0xF000 << 64) | (0xC000 << 48)
_VERSION_8 = (0x8000 << 64) | (0x8000 << 48)
"""RFC 9562's version 8 ("custom") with its variant bits: what a keyed id is."""


class IdempotencyIds:
    """Derives the ids of keyed placements under one secret."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < SECRET_BYTES:
            raise ValueError(f"an idempotency secret must be at least {SECRET_BYTES} bytes")
        self._secret = secret

    @classmethod
    def random(cls) -> IdempotencyIds:
        """Ids under a secret of this process alone: retries are recognised only until it
        exits (tests and tools; a service uses its deployment's secret)."""
        return cls(os.urandom(SECRET_BYTES))

    def _derive(self, *parts: str | int) -> uuid.UUID:
        digest = hmac.digest(self._secret, orjson.dumps(parts), hashlib.sha256)
        value = int.from_bytes(digest[:16])
        return uuid.UUID(int=value & ~_VERSION_AND_VARIANT | _VERSION_8)

    def new_order_id(self, customer_id: str, idempotency_key: str | None) -> str:
        """An id for an order placed without one: derived from the key (scoped to the customer,
        so two customers' keys never collide) when there is one, else random."""
        if idempotency_key is None:
            return str(random_uuid())
        return str(self._derive("order", customer_id, idempotency_key))

    def event_ids(
        self, count: int, order_id: str, idempotency_key: str | None, customer_id: str | None
    ) -> list[uuid.UUID]:
        """The ids of a command's `count` events: derived from the key, the placing customer and
        the order when there is a key, else random."""
        if idempotency_key is None:
            return [random_uuid() for _ in range(count)]
        return [
            self._derive("event", customer_id or "", idempotency_key, order_id, i)
            for i in range(count)
        ]


LEGACY_NAMESPACE = uuid.UUID("5b0f3c1e-7f0a-4f43-9d6e-2c1a8d0f6b21")
"""The uuid5 namespace of the public derivation orders placed before the keyed one used."""


def legacy_order_id(customer_id: str, idempotency_key: str) -> str:
    """The id the public derivation gave a keyed placement without an order id."""
    return str(uuid.uuid5(LEGACY_NAMESPACE, f"order:{customer_id}:{idempotency_key}"))


def legacy_event_id(order_id: str, idempotency_key: str, customer_id: str | None) -> uuid.UUID:
    """The id the public derivation gave a keyed placement's (only) event. Its encoding is
    ambiguous (`a` + `x:k` equals `a:x` + `k`): whoever matches it must also check the
    placing customer."""
    scope = f"{customer_id}:{idempotency_key}:{order_id}"
    return uuid.uuid5(LEGACY_NAMESPACE, f"{scope}:0")
