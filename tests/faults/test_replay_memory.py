"""Memory after `events` subscriptions that replay history and close: it must level off, not
grow with every round (a server subprocess, its RSS read from /proc)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from domain.events import LineItem, OrderPlaced, OrderShipped, PaymentTaken
from eventstore.embedded import SQLiteEventStore
from tests.e2e.ws import graphql_ws
from tests.faults.conftest import Service, running_service
from tests.integration.projections.store_helpers import append

EVENTS_SUB = "subscription { events { position type } }"
HISTORY = 2400
SUBSCRIBERS = 10
ROUNDS = 5
GROWTH_BOUND_MIB = 30.0
"""What the later rounds may add over the first ones together (a leak adds ~24 MiB a round)."""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def seed(data_dir: Path, events: int) -> None:
    """Write the history straight into the service's (not yet running) embedded store."""
    store = await SQLiteEventStore.open(data_dir)
    try:
        for n in range(events // 3):
            order_id = f"mem-{n}"
            await append(
                store,
                order_id,
                OrderPlaced(
                    order_id=order_id,
                    customer_id="c-1",
                    items=(LineItem(product_id="p1", name="Pen", price=Decimal("4.00"), qty=2),),
                    total=Decimal("8.00"),
                ),
                PaymentTaken(amount=Decimal("8.00"), method="card", transaction_id=f"t{n}"),
                OrderShipped(tracking_id=f"trk{n}", carrier="DHL"),
            )
    finally:
        await store.close()


async def replay_and_close(service: Service) -> None:
    async def one() -> None:
        async with graphql_ws(service.ws_url, service.token()) as ws:
            sub = await ws.subscribe(EVENTS_SUB)
            for _ in range(HISTORY):
                await sub.event("events", within=30)

    await asyncio.gather(*(one() for _ in range(SUBSCRIBERS)))


async def test_replaying_subscriptions_leave_no_memory_behind(tmp_path: Path) -> None:
    await seed(tmp_path / "data", HISTORY)
    with running_service(tmp_path) as service:
        pid = service.process.pid
        assert pid is not None
        samples = []
        for _ in range(ROUNDS):
            await replay_and_close(service)
            await asyncio.sleep(0.2)
            samples.append(rss_mib(pid))
    print("RSS by round (MiB):", " ".join(f"{s:.0f}" for s in samples))
    growth = samples[-1] - samples[1]  # the first round warms caches and pools
    assert growth < GROWTH_BOUND_MIB, f"RSS grew {growth:.0f} MiB: {samples}"
