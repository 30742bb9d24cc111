"""Projector catch-up throughput: 100,000 order events from a fresh store into Redis.

Measures, in one run on one embedded redis-server:
  1. the raw pipelined Redis write rate (one HSET of a small hash per event, through redis-py
     pipelines like a naive projector's): the limit; and the same commands packed in advance, the
     server's own ceiling;
  2. the Lua apply alone (pre-built arguments, no log reads, no decoding);
  3. the full catch-up (read the log in pages, decode, map, apply) from an empty Redis;
  4. a rebuild into a fresh namespace beside the serving one (the switch included, no grace wait).
  5. the log read alone: a catch-up subscription from the start to the head, nothing applied;
and for 1's first, 3, 4 and 5 the CPU time per event of this process (all its threads) and of
redis-server (its INFO), which the machine's load blurs less than the rates.
The store is a fresh embedded one, or with `--store postgres` a throwaway PostgreSQL database on
TEST_POSTGRES_URL's server. Prints a markdown table.
Usage: .venv/bin/python -m scripts.bench_projector [--events 100000] [--runs 3] [--store postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from application.codec import ORDER_EVENTS, EventContext, encode
from domain.events import (
    ItemAdded,
    LineItem,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    PaymentTaken,
    order_stream,
)
from eventstore.embedded import SQLiteEventStore
from eventstore.port import NO_STREAM, EventStore, StoreWithGroups
from projections.decoding import to_change
from projections.embedded_redis import start_embedded_redis
from projections.rebuild import rebuild
from projections.recovery import recover
from projections.redis_store import RedisViewStore
from scripts import _postgres

console = Console(stderr=True)
BATCH = 2000
STORE_NAMES = {"embedded": "embedded SQLite store", "postgres": "PostgreSQL store"}


def order_events(n: int) -> list[OrderEvent]:
    """A realistic life: placed, sometimes amended, mostly paid, often shipped (about 4 events)."""
    items = tuple(
        LineItem(product_id=f"p{k}", name=f"Product {k}", price=Decimal("9.99"), qty=1 + k % 3)
        for k in range(1 + n % 3)
    )
    total = sum((i.subtotal for i in items), Decimal("0.00"))
    events: list[OrderEvent] = [
        OrderPlaced(order_id=f"o{n}", customer_id=f"c{n % 500}", items=items, total=total)
    ]
    extra = LineItem(product_id="gift", name="Gift wrap", price=Decimal("2.50"), qty=1)
    total += extra.subtotal
    events.append(ItemAdded(item=extra, total=total))
    events.append(PaymentTaken(amount=total, method="card", transaction_id=f"t{n}"))
    if n % 4:
        events.append(OrderShipped(tracking_id=f"TR{n}", carrier="DHL"))
    return events


async def fill(store: EventStore, target: int) -> int:
    context = EventContext(
        correlation_id="bench", causation_id="bench", actor="bench", occurred_at=datetime.now(UTC)
    )
    written = 0
    n = 0
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("writing events", total=target)
        while written < target:
            appends = []
            for _ in range(200):
                events = order_events(n)[: target - written]
                if not events:
                    break
                new = [encode(e, context, uuid.uuid4()) for e in events]
                appends.append(store.append(order_stream(f"o{n}"), new, NO_STREAM))
                written += len(events)
                n += 1
            await asyncio.gather(*appends)
            bar.update(task, completed=written)
    return written


async def raw_rate(views: RedisViewStore, count: int) -> float:
    redis = views.redis
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            for k in range(start, min(count, start + BATCH)):
                pipe.hset(f"raw:{k}", mapping={"status": "PAID", "version": k, "pos": k})
            await pipe.execute()
    elapsed = time.perf_counter() - started
    await views.drop_namespace("raw")
    return count / elapsed


async def packed_rate(views: RedisViewStore, count: int) -> float:
    """The server's own ceiling: the same HSETs packed in advance and written on one connection."""
    redis = views.redis
    connection = redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
    await connection.connect()
    try:
        batches = [
            b"".join(
                connection.pack_command(
                    "HSET", f"packed:{k}", "status", "PAID", "version", k, "pos", k
                )[0]
                for k in range(start, min(count, start + BATCH))
            )
            for start in range(0, count, BATCH)
        ]
        started = time.perf_counter()
        for start, packed in zip(range(0, count, BATCH), batches, strict=True):
            await connection.send_packed_command(packed)
            for _ in range(min(BATCH, count - start)):
                await connection.read_response()
        elapsed = time.perf_counter() - started
    finally:
        await connection.disconnect()
    await views.drop_namespace("packed")
    return count / elapsed


async def lua_rate(store: EventStore, views: RedisViewStore, count: int) -> float:
    records = await store.read_all(filter=ORDER_EVENTS, limit=count)
    changes = [to_change(r) for r in records]
    namespace = await views.new_namespace()
    started = time.perf_counter()
    for start in range(0, len(changes), BATCH):
        await views.apply_batch(changes[start : start + BATCH], namespace=namespace, publish=False)
    elapsed = time.perf_counter() - started
    await views.drop_namespace(namespace)
    return len(changes) / elapsed


class Meter:
    """CPU time per event of this process (every thread) and of redis-server, stage by stage:
    figures the machine's load blurs less than the rates."""

    def __init__(self, views: RedisViewStore) -> None:
        self.views = views
        self.cpu: dict[str, tuple[float, float]] = {}

    async def _server_seconds(self) -> float:
        info = await self.views.redis.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    @contextlib.asynccontextmanager
    async def stage(self, key: str, events: Callable[[], int]) -> AsyncIterator[None]:
        """Meter the block as `key`; `events` says how many it handled, once it is done."""
        server, here = await self._server_seconds(), time.process_time()
        yield
        here = time.process_time() - here
        server = await self._server_seconds() - server
        count = max(events(), 1)
        self.cpu[key] = (here / count * 1e6, server / count * 1e6)


async def measure(
    store: EventStore, views: RedisViewStore, written: int
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """One round of every measurement, each from an empty Redis: rates, and CPU per event."""
    rates: dict[str, float] = {}
    meter = Meter(views)
    await views.redis.flushdb()
    async with meter.stage("raw", lambda: written):
        rates["raw"] = await raw_rate(views, written)
    # not metered: their preparation (packing, decoding) is done before their clocks start
    rates["packed"] = await packed_rate(views, written)
    rates["lua"] = await lua_rate(store, views, written)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("catch-up", total=written)
        applied = 0
        async with meter.stage("catch_up", lambda: applied):
            started = time.perf_counter()
            result = await recover(
                store, views, progress=lambda d, t: bar.update(task, completed=d, total=t)
            )
            applied = result.applied + result.duplicates
            rates["catch_up"] = applied / (time.perf_counter() - started)
        task = bar.add_task("rebuild", total=written)
        rebuilt_events = 0
        async with meter.stage("rebuild", lambda: rebuilt_events):
            started = time.perf_counter()
            rebuilt = await rebuild(
                store, views, grace=0, progress=lambda d, t: bar.update(task, completed=d, total=t)
            )
            rebuilt_events = rebuilt.events
            rates["rebuild"] = rebuilt.events / (time.perf_counter() - started)
    async with meter.stage("read", lambda: written):
        rates["read"] = await read_rate(store, written)
    return rates, meter.cpu


async def read_rate(store: EventStore, count: int) -> float:
    """A catch-up subscription from the start until it has delivered `count` events."""
    subscription = store.subscribe_all()
    seen = 0
    started = time.perf_counter()
    try:
        async for _ in subscription:
            seen += 1
            if seen >= count:
                break
    finally:
        aclose = getattr(subscription, "aclose", None)
        if aclose is not None:
            await aclose()
    return seen / (time.perf_counter() - started)


async def open_store(kind: str, data: Path) -> tuple[StoreWithGroups, str | None]:
    """The store under test, and the throwaway database's URL on PostgreSQL."""
    if kind == "postgres":
        from eventstore.postgres import PostgresEventStore

        url = await _postgres.create_database("bench_projector")
        return await PostgresEventStore.open(url), url
    return await SQLiteEventStore.open(data), None


async def main(events: int, runs: int, kind: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory)
        store, database = await open_store(kind, data)
        server = await start_embedded_redis(data)
        redis = server.client()
        try:
            views = RedisViewStore(redis, prefix="bench")
            written = await fill(store, events)
            console.print(f"wrote {written} events")
            rounds = []
            cpus = []
            for n in range(runs):
                rates, metered = await measure(store, views, written)
                rounds.append(rates)
                cpus.append(metered)
                rate = rates["catch_up"]
                console.print(f"run {n + 1}/{runs}: catch-up at {rate:,.0f} events/s")
        finally:
            await redis.aclose()
            await server.stop()
            await store.close()
            if database is not None:
                await _postgres.drop_database(database)
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    best = {key: max(r[key] for r in rounds) for key in rounds[0]}
    raw = median["raw"]
    rows = [
        ("raw pipelined HSET via redis-py, one per event (the limit)", "raw"),
        ("raw HSET pre-packed on one connection (server ceiling)", "packed"),
        ("Lua apply only (pre-decoded)", "lua"),
        ("**catch-up: read + decode + apply**", "catch_up"),
        ("rebuild beside the serving views", "rebuild"),
        ("log read only: catch-up subscription, nothing applied", "read"),
    ]
    print(
        f"Projector catch-up over {written:,} events ({STORE_NAMES[kind]}, embedded Redis 6.2, "
        f"batches of {BATCH}), median and best of {runs} runs:\n"
    )
    print(
        "| what | events/s (median) | best | median / raw "
        "| CPU µs/event: this process | redis-server |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, key in rows:
        cpu = "| - | - |"
        if key in cpus[0]:
            here = statistics.median(c[key][0] for c in cpus)
            in_redis = statistics.median(c[key][1] for c in cpus)
            cpu = f"| {here:.1f} | {in_redis:.1f} |"
        print(f"| {name} | {median[key]:,.0f} | {best[key]:,.0f} | {median[key] / raw:.2f} {cpu}")
    verdict = "meets" if median["catch_up"] >= 20_000 else "MISSES"
    print(f"\nCatch-up (median) {verdict} the 20,000 events/s target.")
    if kind == "postgres":
        reads = "meets" if median["read"] >= 50_000 else "MISSES"
        print(f"Catch-up reads from PostgreSQL (median) {reads} the 50,000 events/s target.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", choices=tuple(STORE_NAMES), default="embedded")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.runs, arguments.store))
