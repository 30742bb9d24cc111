"""Aggregate load time by stream length, with and without snapshots (issue 5).

Not a test. Builds orders on the embedded store the realistic way a stream grows long: placed, then
amended thousands of times (`addItem` / `removeItem`), every event encoded exactly as the command
handler writes it. "With snapshots" is the worst case the policy allows: the newest snapshot is
`every - 1` events behind the head, so the load folds a full tail. Prints a markdown table of the
median `OrderRepository.load` time over several runs.

    .venv/bin/python -m scripts.bench_load [--sizes 10 100 1000 10000] [--runs 15] [--every 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from domain.events import ItemAdded, ItemRemoved, LineItem, OrderEvent, OrderPlaced, order_stream
from eventstore.codec import EventContext, encode
from eventstore.embedded import SQLiteEventStore
from eventstore.port import ANY, EventStore
from eventstore.repository import OrderRepository
from eventstore.snapshots import SnapshotStore

CONTEXT = EventContext(
    correlation_id="bench", causation_id="bench", actor="bench", occurred_at=datetime.now(UTC)
)
BATCH = 500


def amended_order(order_id: str, length: int) -> list[OrderEvent]:
    """`length` events: placed with one item, then alternately an item added and removed."""
    base = LineItem(product_id="base", name="Base", price=Decimal("10.00"), qty=1)
    extra = LineItem(product_id="extra", name="Extra", price=Decimal("2.50"), qty=2)
    events: list[OrderEvent] = [
        OrderPlaced(order_id=order_id, customer_id="bench", items=(base,), total=Decimal("10.00"))
    ]
    for n in range(1, length):
        if n % 2:
            events.append(ItemAdded(item=extra, total=Decimal("15.00")))
        else:
            events.append(ItemRemoved(product_id="extra", total=Decimal("10.00")))
    return events


async def write(store: EventStore, order_id: str, events: Sequence[OrderEvent]) -> None:
    encoded = [encode(event, CONTEXT, uuid.uuid4()) for event in events]
    for start in range(0, len(encoded), BATCH):
        await store.append(order_stream(order_id), encoded[start : start + BATCH], ANY)


async def median_load(repository: OrderRepository, order_id: str, runs: int) -> float:
    """Median seconds per `load`, after one warm-up."""
    await repository.load(order_id)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await repository.load(order_id)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def measure(sizes: Sequence[int], runs: int, every: int) -> list[tuple[int, float, float]]:
    """(events, median load without snapshots, with) per size."""
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        store = await SQLiteEventStore.open(Path(directory))
        try:
            snapshots = SnapshotStore(store)
            plain = OrderRepository(store)
            cached = OrderRepository(store, snapshots)
            for size in sizes:
                order_id = f"bench-{size}-{uuid.uuid4().hex[:8]}"
                events = amended_order(order_id, size)
                behind = min(every - 1, size)
                await write(store, order_id, events[: size - behind])
                snapshot = await plain.snapshot(order_id) if size > behind else None
                if snapshot is not None:
                    await snapshots.save(snapshot)
                await write(store, order_id, events[size - behind :])
                loaded = await cached.load(order_id)
                assert loaded.version == size, (loaded.version, size)
                # Snapshots are a cache: the same state either way.
                assert loaded.state == (await plain.load(order_id)).state
                rows.append(
                    (
                        size,
                        await median_load(plain, order_id, runs),
                        await median_load(cached, order_id, runs),
                    )
                )
        finally:
            await store.close()
    return rows


def table(rows: Sequence[tuple[int, float, float]], every: int) -> str:
    """The README's markdown table."""
    lines = [
        f"| events | load without snapshots | load with snapshots (every {every}, worst case) |",
        "|---:|---:|---:|",
    ]
    for size, without, with_snapshots in rows:
        lines.append(f"| {size:,} | {without * 1000:.2f} ms | {with_snapshots * 1000:.2f} ms |")
    smallest, largest = rows[0], rows[-1]
    lines.append("")
    lines.append(
        f"With snapshots, {largest[0]:,} events load in {largest[2] / smallest[2]:.2f}x the time "
        f"of {smallest[0]:,} (without: {largest[1] / smallest[1]:.1f}x)."
    )
    return "\n".join(lines)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--every", type=int, default=50)
    options = parser.parse_args()
    rows = asyncio.run(measure(options.sizes, options.runs, options.every))
    print(table(rows, options.every))


if __name__ == "__main__":
    main()
