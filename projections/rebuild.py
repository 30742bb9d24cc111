"""Rebuilding the views without downtime: a fresh namespace beside the serving one, then a switch.

1. Fill a new namespace from the start of the log (`recovery.catch_up`: pages read and decoded
   ahead, streamed to Redis on one connection; nothing published), while the old one keeps
   serving and the projector keeps writing to it.
2. Set the building key: from then on every projector apply also goes to the new namespace (the
   apply script reads the key itself, so workers in other processes follow without being told).
   An event the new namespace cannot take yet (its predecessor is still unread by the rebuild) is
   marked dirty instead of lost.
3. Catch up to the head, re-read the streams of dirty orders, and switch the pointer atomically in
   a script that refuses while anything is dirty; repeat until it succeeds.
4. Readers re-read the pointer within `POINTER_TTL` (at once if they hear the switch message);
   after a grace period longer than that, the old namespace is dropped with SCAN + UNLINK.
The baseline this beats, truncate-and-replay, serves empty or partial views for the whole replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from domain.events import order_stream
from eventstore.port import EventStore
from projections.decoding import to_change
from projections.fields import OrderFields
from projections.keys import KeyParts, NamespaceKeys, as_text
from projections.queries import POINTER_TTL
from projections.recovery import PAGE_SIZE, CatchUpResult, Progress, catch_up
from projections.redis_store import RedisViewStore

logger = logging.getLogger(__name__)

LOCK_TTL_MS = 60_000
MAX_SWITCH_ATTEMPTS = 100


class RebuildInProgress(RuntimeError):
    """Another rebuild of this projection holds the lock."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RebuildResult:
    """What a rebuild did."""

    namespace: str
    old_namespace: str | None
    events: int
    seconds: float
    dropped_keys: int


async def _fix_dirty(store: EventStore, views: RedisViewStore, namespace: str) -> int:
    """Re-read the streams of orders a projector could not write into `namespace` yet."""
    fixed = 0
    keys = NamespaceKeys(namespace)
    while raw := await views.redis.spop(keys.dirty, 500):
        for member in raw:
            order_id = as_text(member)
            stored = await views.redis.hget(keys.order(order_id), OrderFields.VERSION)
            version = int(stored) if stored is not None else 0
            records = await store.read_stream(order_stream(order_id), from_version=version + 1)
            changes = [to_change(r) for r in records]
            await views.apply_batch(changes, namespace=namespace, publish=False)
            fixed += 1
    return fixed


@contextlib.asynccontextmanager
async def _rebuild_lock(views: RedisViewStore) -> AsyncIterator[None]:
    """Hold the projection's rebuild lock (kept alive while held) for the block; refuse with
    `RebuildInProgress` when another rebuild holds it."""
    keys, redis = views.keys, views.redis
    token = uuid.uuid4().hex
    if not await redis.set(keys.rebuild_lock, token, nx=True, px=LOCK_TTL_MS):
        raise RebuildInProgress(f"a rebuild of {keys.prefix} is already running")

    async def keep_lock() -> None:
        while True:
            await asyncio.sleep(LOCK_TTL_MS / 3000)
            await redis.pexpire(keys.rebuild_lock, LOCK_TTL_MS)

    keeper = asyncio.create_task(keep_lock(), name="rebuild-lock")
    try:
        yield
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        if await redis.get(keys.rebuild_lock) == token.encode():
            await redis.delete(keys.rebuild_lock)


def _events(result: CatchUpResult) -> int:
    return result.applied + result.duplicates + result.unprojectable


async def _switch_when_clean(
    store: EventStore, views: RedisViewStore, namespace: str, last: int | None, page_size: int
) -> tuple[int, str | None]:
    """Catch `namespace` up to the head and switch the pointer to it, again until no order is
    dirty. Returns the events read past `last` and the namespace switched from (None: none)."""
    total = 0
    for attempt in range(MAX_SWITCH_ATTEMPTS):
        tail = await catch_up(
            store, views, from_position=None if last is None else last + 1,
            namespace=namespace, publish=False, page_size=page_size,
        )  # fmt: skip
        total += _events(tail)
        if tail.last_position is not None:
            last = tail.last_position
        await _fix_dirty(store, views, namespace)
        outcome = await views.switch(namespace, last or 0)
        if outcome == "aborted":
            raise RuntimeError(f"rebuild into {namespace} was taken over")
        if outcome != "dirty":
            logger.info(
                "event=rebuild_switched prefix=%s namespace=%s attempts=%d",
                views.keys.prefix,
                namespace,
                attempt + 1,
            )
            return total, outcome or None
    raise RuntimeError(f"could not switch to {namespace}: writes kept outrunning it")


async def rebuild(
    store: EventStore,
    views: RedisViewStore,
    *,
    progress: Progress | None = None,
    grace: float = 2 * POINTER_TTL + 0.5,
    page_size: int = PAGE_SIZE,
) -> RebuildResult:
    """Rebuild the projection's views into a fresh namespace and switch to it atomically."""
    keys = views.keys
    async with _rebuild_lock(views):
        started = time.monotonic()
        namespace = await views.new_namespace()
        switched = False
        try:
            head = await store.head_position()
            logger.info(
                "event=rebuild_started prefix=%s namespace=%s head=%d", keys.prefix, namespace, head
            )
            bulk = await catch_up(
                store, views, from_position=None, namespace=namespace, publish=False,
                page_size=page_size, progress=progress, head=head,
            )  # fmt: skip
            await views.redis.set(keys.building, namespace)
            tail_events, old = await _switch_when_clean(
                store, views, namespace, bulk.last_position, page_size
            )
            switched = True
            total = _events(bulk) + tail_events
            if progress is not None:
                progress(total, total)
            await asyncio.sleep(grace)  # readers holding the old pointer move on within POINTER_TTL
            dropped = 0
            for stale in await _other_namespaces(views, namespace):
                dropped += await views.drop_namespace(stale)
            return RebuildResult(
                namespace=namespace,
                old_namespace=old,
                events=total,
                seconds=time.monotonic() - started,
                dropped_keys=dropped,
            )
        finally:
            if not switched:
                if await views.redis.get(keys.building) == namespace.encode():
                    await views.redis.delete(keys.building)
                await views.drop_namespace(namespace)


async def _other_namespaces(views: RedisViewStore, keep: str) -> list[str]:
    """Namespaces of this projection other than `keep` (the old one, and any a crash left)."""
    found = set()
    async for key in views.redis.scan_iter(
        match=views.keys.namespace_pattern(KeyParts.META), count=1000
    ):
        found.add(as_text(key).removesuffix(KeyParts.META))
    current = await views.current_namespace()
    return sorted(ns for ns in found if ns not in (keep, current))
