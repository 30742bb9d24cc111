"""Aggregate load time by stream length, with and without snapshots.

Not a test. Builds orders on the embedded store the realistic way a stream grows long: placed, then
amended thousands of times (`addItem` / `removeItem`), every event encoded exactly as the command
handler writes it. "With snapshots" is measured twice: in the worst case the policy allows (the
newest snapshot is `every - 1` events behind the head, so the load folds a full tail) and in the
typical case (half that: the tail's average length). Loads of every order and case take turns, so
a noisy neighbour slows them all alike, and each figure is the median of `--runs` loads. Every
load goes to the store: `OrderRepository` keeps no state between loads.

The target: with snapshots, the largest order loads within `--target` (1.5x) the time of the
smallest (10 events: no snapshot yet, loaded in the same run), in the worst case and typically.

    .venv/bin/python -m scripts.bench_load [--sizes 10 100 1000 10000] [--runs 200] [--every 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import cast

from application.codec import EventContext, encode
from application.repository import OrderRepository
from application.snapshot_policy import DEFAULT_SNAPSHOT_EVERY
from application.snapshot_store import SnapshotStore
from domain.events import ItemAdded, ItemRemoved, LineItem, OrderEvent, OrderPlaced, order_stream
from eventstore.embedded import SQLiteEventStore
from eventstore.port import ANY, EventStore, RecordedEvent

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """Median load times of one stream length, in seconds."""

    size: int
    without: float
    worst: float
    typical: float
    two_reads: float
    """With snapshots, worst case, read as two hops (the snapshot, then the tail)."""


class TwoReads:
    """The store without its one-read load (`MarkedReads`): a load reads the snapshot, then the
    events after it, two hops to a reader, as every load did before the one read."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        return await self._store.read_stream(
            stream, from_version=from_version, backwards=backwards, limit=limit
        )


async def build(store: EventStore, snapshots: SnapshotStore, size: int, behind: int) -> str:
    """An order of `size` events whose newest snapshot is `behind` events behind its head."""
    order_id = f"bench-{size}-{uuid.uuid4().hex[:8]}"
    events = amended_order(order_id, size)
    behind = min(behind, size)
    await write(store, order_id, events[: size - behind])
    if size > behind:
        snapshot = await OrderRepository(store).snapshot(order_id)
        assert snapshot is not None
        await snapshots.save(snapshot)
    await write(store, order_id, events[size - behind :])
    return order_id


async def measure(sizes: Sequence[int], runs: int, every: int) -> list[Row]:
    """Median load times per size: without snapshots, with (worst case), with (typical)."""
    with tempfile.TemporaryDirectory() as directory:
        store = await SQLiteEventStore.open(Path(directory))
        try:
            snapshots = SnapshotStore(store)
            plain = OrderRepository(store)
            cached = OrderRepository(store, snapshots)
            two_reads = OrderRepository(cast(EventStore, TwoReads(store)), snapshots)
            cases: list[tuple[int, str, OrderRepository, str]] = []
            for size in sizes:
                worst = await build(store, snapshots, size, every - 1)
                typical = await build(store, snapshots, size, every // 2)
                for order_id in (worst, typical):
                    loaded = await cached.load(order_id)
                    assert loaded.version == size, (loaded.version, size)
                    # Snapshots are a cache: the same state either way.
                    assert loaded.state == (await plain.load(order_id)).state
                cases += [
                    (size, "without", plain, worst),
                    (size, "worst", cached, worst),
                    (size, "typical", cached, typical),
                    (size, "two_reads", two_reads, worst),
                ]
            timings: dict[tuple[int, str], list[float]] = {(s, c): [] for s, c, _, _ in cases}
            order = random.Random(0)
            for run in range(runs + 1):
                # Each round in a new order: a load right after a long one (without snapshots,
                # thousands of events) finds its garbage collected on its own time, and a fixed
                # order would put that cost on the same case every round.
                for size, case, repository, order_id in order.sample(cases, len(cases)):
                    started = time.perf_counter()
                    await repository.load(order_id)
                    if run > 0:  # the first round warms caches up
                        timings[size, case].append(time.perf_counter() - started)
        finally:
            await store.close()
    return [
        Row(
            size=size,
            without=statistics.median(timings[size, "without"]),
            worst=statistics.median(timings[size, "worst"]),
            typical=statistics.median(timings[size, "typical"]),
            two_reads=statistics.median(timings[size, "two_reads"]),
        )
        for size in sizes
    ]


def table(rows: Sequence[Row], every: int, runs: int, target: float) -> str:
    """The README's markdown table, each length's times also as a ratio to the smallest's."""
    smallest, largest = rows[0], rows[-1]
    lines = [
        f"Median of {runs} loads each, embedded SQLite store, snapshots every {every} events "
        f"(worst case: the snapshot {every - 1} events behind; typical: {every // 2}); ratios "
        f"to the {smallest.size:,}-event order's load in the same run.",
        "",
        "| events | without snapshots | with snapshots, worst case | with snapshots, typical |",
        "|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.size:,} | {row.without * 1000:.2f} ms ({row.without / smallest.without:.2f}x) "
            f"| {row.worst * 1000:.2f} ms ({row.worst / smallest.worst:.2f}x) "
            f"| {row.typical * 1000:.2f} ms ({row.typical / smallest.typical:.2f}x) |"
        )
    worst = largest.worst / smallest.worst
    typical = largest.typical / smallest.typical
    verdict = "met" if max(worst, typical) <= target else "not met"
    lines.append("")
    lines.append(
        f"With snapshots, {largest.size:,} events load in **{worst:.2f}x** the time of "
        f"{smallest.size:,} in the worst case, **{typical:.2f}x** typically "
        f"(without snapshots: {largest.without / smallest.without:.0f}x). "
        f"Target {target}x in both: {verdict}."
    )
    lines.append("")
    lines.append(
        "One read (the snapshot and the events after it together) against two (the snapshot, "
        "then the events), worst case, same rounds: "
        + ", ".join(
            f"{row.size:,} events {row.worst * 1000:.3f} vs {row.two_reads * 1000:.3f} ms "
            f"(**{row.two_reads / row.worst:.2f}x** faster)"
            for row in rows
        )
        + "."
    )
    return "\n".join(lines)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--every", type=int, default=DEFAULT_SNAPSHOT_EVERY, help="the snapshot interval"
    )
    parser.add_argument("--target", type=float, default=1.5, help="the largest / smallest ratio")
    options = parser.parse_args()
    rows = asyncio.run(measure(options.sizes, options.runs, options.every))
    print(table(rows, options.every, options.runs, options.target))


if __name__ == "__main__":
    main()
