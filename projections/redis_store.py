"""The Redis view store: applies view changes through the Lua script, a chunk of them a call,
the chunks pipelined.

Every write goes through `apply.lua` (see it for the protocol): version checks, order hashes,
indexes, counters, position and publish, a chunk in one atomic step, so a redelivered event can
never count twice and the position is never stored without the changes it covers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from application.codec import item_from_wire, item_to_wire
from domain.events import OrderStatus
from projections.fields import MetaFields, OrderFields
from projections.keys import NamespaceKeys, ProjectionKeys, as_text, pad_position
from projections.lua_scripts import script_source
from projections.mapping import ChangeKind, ViewChange, money_units
from projections.views import OrderView

logger = logging.getLogger(__name__)


class ApplyResult(StrEnum):
    """What the apply script did with one change (the letters it answers with)."""

    OK = "o"
    DUPLICATE = "d"  # already in the views: ack and skip
    GAP = "g"  # an earlier version is missing: retry later
    INVALID = "i"  # can never follow the view: park
    RESET = "R"  # Redis has no namespace (flushed or restarted empty): recover first


_RESULTS = {result.value: result for result in ApplyResult}
"""A script's letter -> its result: a dict lookup, where calling the enum costs a microsecond
per change."""

CHUNK = 250
"""Changes per script call: enough to amortise a call's overhead, short enough (a few ms of
server time) not to stall other clients; a batch is several calls in one pipeline."""


def chunk_sizes(count: int) -> list[int]:
    """How many of `count` changes each script call takes (chunks of `CHUNK`, in order)."""
    return [min(CHUNK, count - start) for start in range(0, count, CHUNK)]


def results_of(replies: Sequence[str], sizes: Sequence[int]) -> list[ApplyResult]:
    """One result per change from the script's replies, one reply per chunk of `sizes` changes
    (a chunk answered 'R' alone: each of its changes is RESET)."""
    results: list[ApplyResult] = []
    for letters, size in zip(replies, sizes, strict=True):
        if letters == ApplyResult.RESET:
            letters *= size
        results.extend([_RESULTS[letter] for letter in letters])
    return results


def change_args(change: ViewChange) -> list[str]:
    """One change as the apply script takes it: id, version, position, occurredAt, kind and six
    more by kind (see apply.lua)."""
    extra: list[str]
    if change.kind is ChangeKind.PLACED:
        assert change.total is not None
        units, scale = money_units(change.total)
        items = orjson.dumps([item_to_wire(i) for i in change.items]).decode()
        count = sum(i.qty for i in change.items)
        extra = [change.customer_id, items, str(change.total), str(units), str(scale), str(count)]
    elif change.kind is ChangeKind.STATUS:
        assert change.status is not None
        extra = [change.status.value, "", "", "", "", ""]
    elif change.kind is ChangeKind.SHIPPED:
        extra = [change.tracking_id or "", change.carrier or "", "", "", "", ""]
    elif change.kind is ChangeKind.ADD:
        assert change.total is not None
        units, scale = money_units(change.total)
        added = change.items[0]
        item = orjson.dumps(item_to_wire(added)).decode()
        extra = [item, str(change.total), str(units), str(scale), str(added.qty), ""]
    elif change.kind is ChangeKind.REMOVE:
        assert change.total is not None
        units, scale = money_units(change.total)
        extra = [change.product_id, str(change.total), str(units), str(scale), "", ""]
    else:
        extra = ["", "", "", "", "", ""]
    return [
        change.order_id,
        str(change.version),
        pad_position(change.position),
        # any ISO-8601 form reads back as the same instant; isoformat() is the cheapest
        change.occurred_at.isoformat(),
        change.kind.value,
        *extra,
    ]


def view_from_hash(raw: dict[Any, Any]) -> OrderView | None:
    """An order view from its Redis hash (None for an empty hash: no such order)."""
    if not raw:
        return None
    h = {as_text(k): as_text(v) for k, v in raw.items()}
    f = OrderFields
    items = tuple(item_from_wire(i) for i in orjson.loads(h[f.ITEMS] or "[]"))
    return OrderView(
        id=h[f.ID],
        customer_id=h[f.CUSTOMER],
        status=OrderStatus(h[f.STATUS]),
        items=items,
        item_count=int(h[f.ITEM_COUNT]),
        total=Decimal(h[f.TOTAL]),
        tracking_id=h.get(f.TRACKING_ID),
        carrier=h.get(f.CARRIER),
        created_at=datetime.fromisoformat(h[f.CREATED]),
        updated_at=datetime.fromisoformat(h[f.UPDATED]),
        version=int(h[f.VERSION]),
        position=int(h[f.POSITION]),
        placed_position=int(h[f.PLACED_POSITION]),
    )


class RedisViewStore:
    """Writes the views of one projection into Redis. Build once, share; holds no connection."""

    def __init__(self, redis: Redis, *, prefix: str = "orders") -> None:
        self.redis = redis
        self.keys = ProjectionKeys(prefix)
        self.apply_script = script_source("apply.lua")
        """apply.lua as Redis runs it (`projections.apply_stream` sends it itself)."""
        self._apply: AsyncScript = redis.register_script(self.apply_script)
        self._ensure: AsyncScript = redis.register_script(script_source("ensure_namespace.lua"))
        self._watermark: AsyncScript = redis.register_script(script_source("watermark.lua"))
        self._switch: AsyncScript = redis.register_script(script_source("switch.lua"))

    async def apply(self, change: ViewChange, *, namespace: str = "") -> ApplyResult:
        """Apply one change (see `apply_batch`)."""
        (result,) = await self.apply_batch([change], namespace=namespace)
        return result

    async def apply_batch(
        self,
        changes: Sequence[ViewChange],
        *,
        namespace: str = "",
        publish: bool = True,
        traceparents: Sequence[str] | None = None,
    ) -> list[ApplyResult]:
        """Apply changes in order, in one round trip; one result per change.

        Without `namespace` the changes go where the pointer says (and to a namespace being
        rebuilt); with it, to that namespace only (a rebuild filling its copy). `traceparents`
        (one per change, "" for none) travel in the published changes to the websocket push.
        """
        return await self.apply_packed(
            [change_args(c) for c in changes],
            namespace=namespace,
            publish=publish,
            traceparents=traceparents,
        )

    async def apply_packed(
        self,
        changes: Sequence[Sequence[str]],
        *,
        namespace: str = "",
        publish: bool = True,
        traceparents: Sequence[str] | None = None,
    ) -> list[ApplyResult]:
        """`apply_batch` of changes already packed as the script takes them (`change_args`, or
        `projections.packing.packed_change` straight from the stored events)."""
        if not changes:
            return []
        try:
            replies = await self._apply_chunks(
                changes, namespace=namespace, publish=publish, traceparents=traceparents
            )
        except NoScriptError:
            # A cluster's pipeline sends EVALSHA without loading the script first (a plain
            # pipeline checks), and a new or failed-over node has none. The script is idempotent,
            # so chunks that did run answer duplicates the second time.
            await self.load_scripts()
            replies = await self._apply_chunks(
                changes, namespace=namespace, publish=publish, traceparents=traceparents
            )
        return results_of([as_text(reply) for reply in replies], chunk_sizes(len(changes)))

    async def _apply_chunks(
        self,
        changes: Sequence[Sequence[str]],
        *,
        namespace: str,
        publish: bool,
        traceparents: Sequence[str] | None,
    ) -> list[Any]:
        keys = [self.keys.pointer, self.keys.building]
        flag = "1" if publish else "0"
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(changes), CHUNK):
                chunk = orjson.dumps(changes[start : start + CHUNK])
                args: list[str | bytes] = [namespace, flag, chunk]
                if traceparents is not None:
                    args.append(orjson.dumps(traceparents[start : start + CHUNK]))
                await self._apply(keys, args, client=pipe)
            return list(await pipe.execute())

    async def load_scripts(self) -> None:
        """Load every script (on a cluster: on every master)."""
        for script in (self._apply, self._ensure, self._watermark, self._switch):
            await self.redis.script_load(script.script)

    async def current_namespace(self) -> str | None:
        """The namespace that serves now, None when Redis has none (empty)."""
        raw = await self.redis.get(self.keys.pointer)
        return None if raw is None else as_text(raw)

    async def ensure_namespace(self) -> tuple[str, bool]:
        """The serving namespace, and whether it was just created (Redis was empty)."""
        ns, created = await self._ensure([self.keys.pointer, self.keys.sequence], [self.keys.tag])
        return as_text(ns), bool(created)

    async def new_namespace(self) -> str:
        """A fresh, empty, not-ready namespace beside the serving one (for a rebuild)."""
        seq = await self.redis.incr(self.keys.sequence)
        ns = self.keys.namespace(seq)
        await self.redis.hset(NamespaceKeys(ns).meta, MetaFields.READY, "0")
        return ns

    async def watermark(self, namespace: str | None = None) -> tuple[int | None, bool]:
        """A namespace's watermark (None: none yet) and whether it is ready (caught up once)."""
        ns = namespace or await self.current_namespace()
        if ns is None:
            return None, False
        mark, ready = await self.redis.hmget(
            NamespaceKeys(ns).meta, [MetaFields.WATERMARK, MetaFields.READY]
        )
        return (int(mark) if mark is not None else None), as_text(ready) == "1"

    async def raise_watermark(
        self, position: int, *, mark_ready: bool = False, namespace: str = ""
    ) -> str:
        """Record that every event at or before `position` is in the serving views.

        Returns 'ok', 'notready' (a catch-up is still running), 'reset' or 'moved'.
        """
        result = await self._watermark(
            [self.keys.pointer], [pad_position(position), "1" if mark_ready else "0", namespace]
        )
        return as_text(result)

    async def switch(self, namespace: str, watermark: int) -> str:
        """Make a rebuilt namespace serve; returns the old one, or 'dirty' / 'aborted'."""
        result = await self._switch(
            [self.keys.pointer, self.keys.building, self.keys.switch_channel],
            [namespace, pad_position(watermark)],
        )
        return as_text(result)

    async def announce_namespace(self, namespace: str) -> None:
        """Tell every process's feed that the views changed wholesale (readers refresh the
        pointer, live listeners re-read), as after a recovery or a switch."""
        await self.redis.publish(self.keys.switch_channel, namespace)

    async def drop_namespace(self, namespace: str, *, batch: int = 500) -> int:
        """Delete every key of a namespace (SCAN + UNLINK in batches); returns how many."""
        dropped = 0
        pending: list[str | bytes] = []
        async for key in self.redis.scan_iter(match=f"{namespace}:*", count=batch):
            pending.append(key)
            if len(pending) >= batch:
                dropped += await self.redis.unlink(*pending)
                pending.clear()
        if pending:
            dropped += await self.redis.unlink(*pending)
        logger.info("event=namespace_dropped namespace=%s keys=%d", namespace, dropped)
        return dropped
