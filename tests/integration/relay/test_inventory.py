"""The inventory example against the relay's topic on a real broker (Tansu): its reservations
equal a fold of the log, a topic holding every event twice (the relay's at-least-once) changes
nothing, and a restarted consumer resumes from the offsets in its own store."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from application.codec import decode_record
from domain.events import OrderStatus
from domain.order import OrderState, evolve
from eventstore.port import StoreWithGroups
from examples.inventory.service import InventorySettings, consume
from examples.inventory.store import InventoryStore
from relay.config import KafkaSettings
from relay.main import running_relays
from relay.worker import GROUP
from tests.contract.conftest import embedded_adapter
from tests.integration.relay.topic import eventually, order_log, read_topic, write_orders


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StoreWithGroups]:
    async with embedded_adapter(tmp_path) as opened:
        yield opened


def fold_reservations(states: list[OrderState]) -> dict[str, int]:
    """What must be reserved: every item of every order not cancelled."""
    reserved: Counter[str] = Counter()
    for state in states:
        if state.status is not OrderStatus.CANCELLED:
            for line in state.items:
                reserved[line.product_id] += line.qty
    return {product: qty for product, qty in reserved.items() if qty}


async def folded(store: StoreWithGroups) -> tuple[dict[str, int], int]:
    states: dict[str, OrderState | None] = defaultdict(lambda: None)
    log = await order_log(store)
    for record in log:
        event = decode_record(record).event
        assert event is not None
        states[record.stream] = evolve(states[record.stream], event)
    return fold_reservations([s for s in states.values() if s is not None]), len(log)


def consumed(inventory: InventoryStore, settings: InventorySettings, partitions: int) -> int:
    """Records consumed by the stored offsets, over every partition."""
    return sum(inventory.next_offset(settings.topic, p) or 0 for p in range(partitions))


async def run_inventory(
    settings: InventorySettings, until_consumed: int, partitions: int
) -> dict[str, int]:
    """Run the consumer until its stored offsets cover `until_consumed` records."""
    inventory = InventoryStore(settings.database)
    stop = asyncio.Event()
    task = asyncio.create_task(consume(settings, inventory, stop))
    try:

        async def applied() -> bool:
            if task.done():
                task.result()
            return consumed(inventory, settings, partitions) >= until_consumed

        await eventually(applied, within=60)
        return inventory.reservations()
    finally:
        stop.set()
        await task
        inventory.close()


async def test_reservations_equal_a_fold_of_the_log_despite_duplicates(
    store: StoreWithGroups, kafka: KafkaSettings, tmp_path: Path
) -> None:
    await write_orders(store, 40)
    expected, events = await folded(store)
    assert expected  # the orders reserve something
    async with running_relays(store, kafka):
        await read_topic(kafka, at_least=events)
    settings = InventorySettings(
        bootstrap_servers=kafka.bootstrap_servers,
        topic=kafka.topic,
        group="inventory-test",
        database=tmp_path / "inventory.db",
    )
    assert await run_inventory(settings, events, kafka.partitions) == expected

    # the relay starts over (its group deleted): every event is on the topic twice now
    await store.groups.delete_subscription(GROUP)
    async with running_relays(store, kafka):
        await read_topic(kafka, at_least=2 * events)
    # a new consumer group: Kafka's committed offsets play no part, the stored ones do;
    # the second copies are recognised by event id
    settings = InventorySettings(
        bootstrap_servers=kafka.bootstrap_servers,
        topic=kafka.topic,
        group="inventory-other",
        database=settings.database,
    )
    assert await run_inventory(settings, 2 * events, kafka.partitions) == expected
    check = InventoryStore(settings.database)
    try:
        assert check.applied_count() == events
        assert consumed(check, settings, kafka.partitions) == 2 * events
    finally:
        check.close()
