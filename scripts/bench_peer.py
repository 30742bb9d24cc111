"""Side by side with the `eventsourcing` library: the same workload, the same rules, on SQLite.

Not a test, and the library is not a dependency of the project: it is installed for this script
only, into the same virtualenv:

    .venv/bin/pip install 'eventsourcing==9.5.*'
    .venv/bin/python -m scripts.bench_peer [--flows 300] [--callers 32] [--runs 3]
        [--loads 1000] [--plain-loads 50] [--chunks 10] [--rows ...] [--before PATH]

Both sides write to a file on disk with SQLite in WAL mode and synchronous=FULL (SQLite's default,
checked here), both take a snapshot every 20 events (the library's documented
`snapshotting_intervals`), and both decide with the same rules: an order is placed with items,
paid with exactly its total while pending, shipped once paid; amended (`addItem` / `removeItem`)
only while pending. Ours is the application layer directly (`CommandHandler` and `OrderRepository`
over the embedded `SQLiteEventStore`, wired as the server wires them), not HTTP, so like is
compared with like. The library runs with its defaults (no aggregate cache) plus snapshotting.

Every figure is measured in a process of its own (a fresh interpreter, a fresh database, set up
and warmed up first). The two sides' processes for a row run side by side but never at once: the
same work is cut into `--chunks` short chunks that the sides run in lockstep, one and then the
other, the order turning every chunk and every run, so a noisy neighbour's slow second falls on
both alike instead of on whichever side happened to be running. Each figure is the median of
`--runs`. `--before PATH` adds a third side: ours on the code at PATH (a checkout of main).
Rows: place/pay/ship flows from one caller, and from `--callers` concurrent callers
(ours: tasks on one event loop; the library's API is synchronous: threads), commands/s; the
median time to load an order of 1,000 events without snapshots, with them, and of 10 events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

WARM_UP = 20
"""Flows (or loads) each side runs before it is measured: imports, caches and the SQLite page
cache are warm for both."""
HINT = (
    "the library is installed for this benchmark only: .venv/bin/pip install 'eventsourcing==9.5.*'"
)
EVERY = 20
ROWS = {
    "sequential": "sequential, 1 caller (commands/s)",
    "concurrent": "concurrent, {callers} callers (commands/s)",
    "load_plain": "reload a 1,000-event order, no snapshots (ms)",
    "load_snap": "reload a 1,000-event order, snapshots every 20 (ms)",
    "load_small": "reload a 10-event order, snapshots on (ms)",
}
LOAD_ROWS = {"load_plain": (1000, False), "load_snap": (1000, True), "load_small": (10, True)}
ITEM = {"product_id": "p1", "name": "Widget", "price": "10.00", "qty": 2}
EXTRA = {"product_id": "p2", "name": "Extra", "price": "2.50", "qty": 1}


# -- ours ----------------------------------------------------------------------------------------


class _Ours:
    """The application layer as `api.wiring.bootstrap.build_services` wires it, on the embedded
    store."""

    def __init__(self, directory: Path, *, snapshots: bool) -> None:
        self.directory = directory
        self.snapshots = snapshots

    async def __aenter__(self) -> _Ours:
        from application.handler import CommandHandler
        from application.recent_orders import RecentOrders
        from application.repository import OrderRepository
        from application.snapshot_policy import SnapshotPolicy
        from application.snapshot_store import SnapshotStore
        from application.snapshot_taker import Snapshotter
        from eventstore.embedded import SQLiteEventStore

        self.store = await SQLiteEventStore.open(self.directory)
        snapshots = SnapshotStore(self.store) if self.snapshots else None
        self.repository = OrderRepository(self.store, snapshots)
        self.snapshotter = (
            None
            if snapshots is None
            else Snapshotter(self.repository, snapshots, SnapshotPolicy(every=EVERY))
        )
        self.handler = CommandHandler(
            self.store, RecentOrders(self.repository), snapshotter=self.snapshotter
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.snapshotter is not None:
            await self.snapshotter.close()
        await self.store.close()

    async def command(self, command: Any) -> int:
        accepted = await self.handler.handle(
            command, expected_version=None, actor="bench", correlation_id="bench"
        )
        return accepted.version

    async def flow(self) -> None:
        from domain.commands import PlaceOrder, ShipOrder, TakePayment
        from domain.events import LineItem

        order_id = self.handler.new_order_id("c1", None)
        item = LineItem(
            product_id=ITEM["product_id"],  # type: ignore[arg-type]
            name=ITEM["name"],  # type: ignore[arg-type]
            price=Decimal(ITEM["price"]),  # type: ignore[arg-type]
            qty=ITEM["qty"],  # type: ignore[arg-type]
        )
        await self.command(PlaceOrder(order_id=order_id, customer_id="c1", items=(item,)))
        await self.command(
            TakePayment(
                order_id=order_id, amount=Decimal("20.00"), method="card", transaction_id="t"
            )
        )
        await self.command(ShipOrder(order_id=order_id, tracking_id="tr", carrier="ups"))

    async def amended(self, length: int) -> str:
        """An order of `length` events: placed, then an item added and removed in turn."""
        from domain.commands import AddItem, PlaceOrder, RemoveItem
        from domain.events import LineItem

        def line(spec: dict[str, Any]) -> LineItem:
            return LineItem(
                product_id=spec["product_id"],
                name=spec["name"],
                price=Decimal(spec["price"]),
                qty=spec["qty"],
            )

        order_id = self.handler.new_order_id("c1", None)
        await self.command(PlaceOrder(order_id=order_id, customer_id="c1", items=(line(ITEM),)))
        for n in range(1, length):
            if n % 2:
                await self.command(AddItem(order_id=order_id, item=line(EXTRA)))
            else:
                await self.command(RemoveItem(order_id=order_id, product_id="p2"))
        if self.snapshotter is not None:
            await self.snapshotter.drain()
        return order_id

    async def load(self, order_id: str) -> None:
        await self.repository.load(order_id)


async def _ours(row: str, options: argparse.Namespace, directory: Path) -> None:
    """Set up ours for `row`, warm up, then run the parent's chunks (`_serve`)."""
    if row in LOAD_ROWS:
        length, snapshots = LOAD_ROWS[row]
        async with _Ours(directory, snapshots=snapshots) as ours:
            order_id = await ours.amended(length)
            loaded = await ours.repository.load(order_id)
            assert loaded.version == length, (loaded.version, length)
            for _ in range(WARM_UP):
                await ours.load(order_id)

            async def loads(count: int) -> list[float]:
                times = []
                for _ in range(count):
                    started = time.perf_counter()
                    await ours.load(order_id)
                    times.append(time.perf_counter() - started)
                return times

            await _serve_async(loads)
        return
    callers = 1 if row == "sequential" else options.callers
    async with _Ours(directory, snapshots=True) as ours:
        for _ in range(WARM_UP):
            await ours.flow()

        async def flows(count: int) -> list[float]:
            pending = list(range(count))

            async def caller() -> None:
                while pending:
                    pending.pop()
                    await ours.flow()

            started = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(callers)))
            return [time.perf_counter() - started]

        await _serve_async(flows)


async def _serve_async(chunk: Callable[[int], Awaitable[list[float]]]) -> None:
    """`_serve` for ours: waiting for the parent off the loop, so background work may go on."""
    print(json.dumps({"ready": True}), flush=True)
    while (line := await asyncio.to_thread(sys.stdin.readline)).strip():
        cpu = time.process_time()
        times = await chunk(int(line))
        _answer(times, time.process_time() - cpu)


def _serve(chunk: Callable[[int], list[float]]) -> None:
    """Answer the parent: "ready" once set up and warm, then for each line holding a count the
    times of that chunk (one per load, or one for the chunk's flows) and the CPU it took (the
    process's, every thread's), until an empty line."""
    print(json.dumps({"ready": True}), flush=True)
    while (line := sys.stdin.readline()).strip():
        cpu = time.process_time()
        times = chunk(int(line))
        _answer(times, time.process_time() - cpu)


def _answer(times: list[float], cpu: float) -> None:
    print(json.dumps({"times": times, "cpu": cpu}), flush=True)


# -- the library ---------------------------------------------------------------------------------


def _library(row: str, options: argparse.Namespace, directory: Path) -> None:
    """Set up the library for `row`, warm up, then run the parent's chunks (`_serve`)."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class InvalidTransition(Exception):
        """The order's state refuses the command."""

    class Order(Aggregate):
        """The same rules as `domain.decide`, written the library's way."""

        @event("Placed")
        def __init__(self, customer_id: str, items: list[dict[str, Any]]) -> None:
            self.customer_id = customer_id
            self.items = items
            self.total = sum((Decimal(i["price"]) * i["qty"] for i in items), Decimal("0.00"))
            self.status = "PENDING"

        def _require(self, allowed: bool, verb: str) -> None:
            if not allowed:
                raise InvalidTransition(f"cannot {verb} an order that is {self.status}")

        def take_payment(self, amount: Decimal, method: str, transaction_id: str) -> None:
            self._require(self.status == "PENDING", "take payment for")
            if amount != self.total:
                raise InvalidTransition(f"amount {amount} does not equal the total {self.total}")
            self._payment_taken(amount=amount, method=method, transaction_id=transaction_id)

        @event("PaymentTaken")
        def _payment_taken(self, amount: Decimal, method: str, transaction_id: str) -> None:
            self.status = "PAID"

        def ship(self, tracking_id: str, carrier: str) -> None:
            self._require(self.status == "PAID", "ship")
            self._shipped(tracking_id=tracking_id, carrier=carrier)

        @event("Shipped")
        def _shipped(self, tracking_id: str, carrier: str) -> None:
            self.status = "SHIPPED"

        def add_item(self, item: dict[str, Any]) -> None:
            self._require(self.status == "PENDING", "add an item to")
            if any(i["product_id"] == item["product_id"] for i in self.items):
                raise InvalidTransition(f"product {item['product_id']} is already in the order")
            total = self.total + Decimal(item["price"]) * item["qty"]
            self._item_added(item=item, total=total)

        @event("ItemAdded")
        def _item_added(self, item: dict[str, Any], total: Decimal) -> None:
            self.items = [*self.items, item]
            self.total = total

        def remove_item(self, product_id: str) -> None:
            self._require(self.status == "PENDING", "remove an item from")
            found = [i for i in self.items if i["product_id"] == product_id]
            if not found:
                raise InvalidTransition(f"product {product_id} is not in the order")
            if len(self.items) == 1:
                raise InvalidTransition("cannot remove the last item")
            total = self.total - Decimal(found[0]["price"]) * found[0]["qty"]
            self._item_removed(product_id=product_id, total=total)

        @event("ItemRemoved")
        def _item_removed(self, product_id: str, total: Decimal) -> None:
            self.items = [i for i in self.items if i["product_id"] != product_id]
            self.total = total

    snapshots = row not in LOAD_ROWS or LOAD_ROWS[row][1]

    class Orders(Application[uuid.UUID]):
        """The orders: one command, one load and one save."""

        snapshotting_intervals = {Order: EVERY} if snapshots else None

        def place(self) -> uuid.UUID:
            order = Order(customer_id="c1", items=[ITEM])
            self.save(order)
            order_id: uuid.UUID = order.id
            return order_id

        def act(self, order_id: uuid.UUID, act: Callable[[Order], None]) -> None:
            order: Order = self.repository.get(order_id)
            act(order)
            self.save(order)

        def flow(self) -> None:
            order_id = self.place()
            self.act(order_id, lambda o: o.take_payment(Decimal("20.00"), "card", "t"))
            self.act(order_id, lambda o: o.ship("tr", "ups"))

    app = Orders(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(directory / "library.db"),
            "SQLITE_LOCK_TIMEOUT": "60",
        }
    )
    try:
        if row in LOAD_ROWS:
            length = LOAD_ROWS[row][0]
            order_id = app.place()
            for n in range(1, length):
                if n % 2:
                    app.act(order_id, lambda o: o.add_item(EXTRA))
                else:
                    app.act(order_id, lambda o: o.remove_item("p2"))
            assert app.repository.get(order_id).version == length
            for _ in range(WARM_UP):
                app.repository.get(order_id)

            def loads(count: int) -> list[float]:
                times = []
                for _ in range(count):
                    started = time.perf_counter()
                    app.repository.get(order_id)
                    times.append(time.perf_counter() - started)
                return times

            _serve(loads)
            return
        for _ in range(WARM_UP):
            app.flow()
        callers = 1 if row == "sequential" else options.callers
        with ThreadPoolExecutor(callers) as pool:

            def flows(count: int) -> list[float]:
                started = time.perf_counter()
                if callers == 1:
                    for _ in range(count):
                        app.flow()
                else:
                    list(pool.map(lambda _: app.flow(), range(count)))
                return [time.perf_counter() - started]

            _serve(flows)
    finally:
        app.close()


# -- the runs ------------------------------------------------------------------------------------


def _child(side: str, row: str, options: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        if side == "ours":
            asyncio.run(_ours(row, options, Path(directory)))
        else:
            _library(row, options, Path(directory))


class _Side:
    """One side's process for one figure, set up and warm, running chunks when told."""

    def __init__(self, side: str, row: str, options: argparse.Namespace) -> None:
        self.side = side
        child = "library" if side == "library" else "ours"
        # This script, run by its path, imports the application from this tree or the other.
        tree = options.before if side == "before" else Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        command = [sys.executable, str(Path(__file__).resolve()), "--child", child, "--row", row]
        command += ["--callers", str(options.callers)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.times: list[float] = []
        self.cpu = 0.0
        self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            sys.exit(f"bench_peer: {self.side} failed (exit {self.process.returncode})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, count: int) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        answer = self._answer()
        self.times.extend(answer["times"])
        self.cpu += answer["cpu"]

    def end(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.close()
        if self.process.wait() != 0:
            sys.exit(f"bench_peer: {self.side} failed (exit {self.process.returncode})")


def _measure(
    row: str, options: argparse.Namespace, run: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Every side's figure for `row` and its CPU per command (or load) in microseconds: each in
    a fresh process, set up and warmed up, then running the same work in `--chunks` short chunks
    in lockstep (one side after the other, the order turning every chunk), so a noisy
    neighbour's slow second falls on all alike."""
    names = ["ours", "library"] + (["before"] if options.before else [])
    sides = {name: _Side(name, row, options) for name in names}
    total = {"load_plain": options.plain_loads}.get(row, options.loads)
    total = total if row in LOAD_ROWS else options.flows
    chunks = max(1, min(options.chunks, total))
    try:
        for n in range(chunks):
            count = total // chunks + (1 if n < total % chunks else 0)
            turn = (run + n) % len(names)
            for name in names[turn:] + names[:turn]:
                sides[name].run(count)
    finally:
        for side in sides.values():
            side.end()
    operations = total if row in LOAD_ROWS else 3 * total
    cpu = {name: side.cpu / operations * 1e6 for name, side in sides.items()}
    if row in LOAD_ROWS:
        return {name: statistics.median(side.times) * 1000 for name, side in sides.items()}, cpu
    return {name: operations / sum(side.times) for name, side in sides.items()}, cpu


def table(figures: dict[tuple[str, str], list[float]], options: argparse.Namespace) -> str:
    """The README's markdown table: medians, and ours / the library (higher is better); with
    `--before`, the same for the code at that path."""
    before = bool(options.before)
    head = "| row | ours | eventsourcing 9.5 | ours / the library |"
    if before:
        head += " before | before / the library |"
    lines = [
        f"Median of {options.runs} runs each, every figure in a process of its own, the sides "
        f"taking turns in {options.chunks} chunks a figure; ratio: ours / the library, above 1 "
        "means ours is faster.",
        "",
        head,
        "|---|---:|---:|---:|" + ("---:|---:|" if before else ""),
    ]
    for row in options.rows:
        unit = "{:.3f}" if row in LOAD_ROWS else "{:,.0f}"
        theirs = statistics.median(figures[row, "library"])
        cells = [ROWS[row].format(callers=options.callers)]
        for side in ("ours", "before") if before else ("ours",):
            figure = statistics.median(figures[row, side])
            # For times, faster is the inverse ratio.
            ratio = theirs / figure if row in LOAD_ROWS else figure / theirs
            cells += [unit.format(figure)]
            if side == "ours":
                cells += [unit.format(theirs)]
            cells += [f"**{ratio:.2f}x**"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _synchronous_is_full() -> bool:
    """Whether this SQLite opens connections with synchronous=FULL (2), as both sides rely on."""
    with tempfile.TemporaryDirectory() as directory:
        conn = sqlite3.connect(Path(directory) / "probe.db")
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return int(conn.execute("PRAGMA synchronous").fetchone()[0]) == 2
        finally:
            conn.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=300, help="place/pay/ship flows per run")
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--loads", type=int, default=1000, help="loads per load figure")
    parser.add_argument(
        "--plain-loads", type=int, default=50, help="loads of the row without snapshots (slow)"
    )
    parser.add_argument(
        "--chunks", type=int, default=10, help="chunks each figure's work is run in, in lockstep"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument(
        "--before", type=Path, help="also run ours on the code at this path (a checkout of main)"
    )
    parser.add_argument("--child", choices=["ours", "library"], help=argparse.SUPPRESS)
    parser.add_argument("--row", choices=list(ROWS), help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        print(f"bench_peer: {HINT}", file=sys.stderr)
        sys.exit(2)
    if options.child:
        _child(options.child, options.row, options)
        return
    if not _synchronous_is_full():
        sys.exit("bench_peer: this SQLite does not default to synchronous=FULL")
    figures: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    for run in range(options.runs):
        for row in options.rows:
            measured, cpu = _measure(row, options, run)
            for side, figure in measured.items():
                figures.setdefault((row, side), []).append(figure)
                cpus.setdefault((row, side), []).append(cpu[side])
            said = ", ".join(
                f"{side} {figure:.3f} ({cpu[side]:.0f} us CPU)" for side, figure in measured.items()
            )
            print(f"run {run + 1} {row}: {said}", file=sys.stderr)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(table(figures, options))
    print("\nCPU per command or load (µs, the process's user + system time, every thread):")
    for row in options.rows:
        said = ", ".join(
            f"{side} {statistics.median(cpus[row, side]):.0f}"
            for side in ("ours", "library", "before")
            if (row, side) in cpus
        )
        print(f"- {ROWS[row].format(callers=options.callers)}: {said}")


if __name__ == "__main__":
    main()
