"""Where the idempotency secret lives: one per deployment, the same in every process, kept
across restarts.

`IDEMPOTENCY_SECRET`, when set, is the secret. Otherwise the event store keeps one: the first
process to start on a store generates 32 random bytes and appends them as the only event of the
stream `orderIdempotencySecret`, expecting no stream; every other process (and every restart)
reads that event, and a process that loses the race to create it reads the winner's. This works
alike on every store (embedded SQLite in DATA_DIR, PostgreSQL, EventStoreDB), since it uses only
the port's optimistic append and read, and whatever shares a store shares the secret. The
stream is outside the `order-` category, so no projector, relay, GraphQL query or event-log
subscription of this service ever shows it; who can read the store directly can read
it (and could write orders anyway). A deployment that wants the secret out of the store sets
IDEMPOTENCY_SECRET in every process.
"""

from __future__ import annotations

import base64
import logging
import os

import orjson

from application.idempotency import SECRET_BYTES, IdempotencyIds
from application.ids import random_uuid
from eventstore.port import NO_STREAM, EventStore, NewEvent, WrongExpectedVersion

logger = logging.getLogger(__name__)

SECRET_STREAM = "orderIdempotencySecret"
SECRET_EVENT_TYPE = "IdempotencySecretCreated"


class UnusableSecret(RuntimeError):
    """The secret stream holds something that is not a secret this code wrote."""


async def load_idempotency_ids(store: EventStore, configured: str | None) -> IdempotencyIds:
    """The deployment's `IdempotencyIds`: under `configured` (IDEMPOTENCY_SECRET) when set,
    else under the secret the store keeps (created on first use)."""
    if configured is not None:
        return IdempotencyIds(configured.encode())
    stored = await _read(store)
    if stored is None:
        secret = os.urandom(SECRET_BYTES)
        event = NewEvent(
            id=random_uuid(),
            type=SECRET_EVENT_TYPE,
            data=orjson.dumps({"secret": base64.b64encode(secret).decode()}),
            metadata=b"{}",
        )
        try:
            await store.append(SECRET_STREAM, [event], NO_STREAM)
            logger.info("event=idempotency_secret_created stream=%s", SECRET_STREAM)
            stored = secret
        except WrongExpectedVersion:
            stored = await _read(store)  # another process created it first: use theirs
            if stored is None:
                raise UnusableSecret(f"{SECRET_STREAM} exists but holds no event") from None
    return IdempotencyIds(stored)


async def _read(store: EventStore) -> bytes | None:
    records = await store.read_stream(SECRET_STREAM, from_version=1, limit=1)
    if not records:
        return None
    try:
        secret = base64.b64decode(orjson.loads(records[0].data)["secret"], validate=True)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise UnusableSecret(f"{SECRET_STREAM}'s event is not a secret: {error}") from error
    if len(secret) < SECRET_BYTES:
        raise UnusableSecret(f"{SECRET_STREAM}'s secret is shorter than {SECRET_BYTES} bytes")
    return secret
