"""Reading a relay's topic back from the broker, and the log it must equal."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from application.codec import ORDER_EVENTS, EventContext, encode
from domain.events import (
    ItemAdded,
    ItemRemoved,
    LineItem,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    PaymentTaken,
    order_stream,
)
from eventstore.port import ANY, EventStore, RecordedEvent
from relay.config import KafkaSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """One record read back from the topic."""

    partition: int
    offset: int
    key: str
    headers: dict[str, str]
    value: dict[str, Any]

    @property
    def event_id(self) -> str:
        return self.headers["event-id"]


async def read_topic(
    kafka: KafkaSettings, *, at_least: int, within: float = 30.0, settle: bool = True
) -> list[Published]:
    """Every record of the topic, once it holds at least `at_least` (bounded wait), read until
    the topic is quiet for a moment (`settle`), else as soon as there are that many."""
    deadline = time.monotonic() + within
    await wait_for_topic(kafka, deadline)
    # no consumer group: partitions assigned by hand, so no group join to wait for
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Published] = []
    try:
        consumer.assign([TopicPartition(kafka.topic, p) for p in range(kafka.partitions)])
        await consumer.seek_to_beginning()
        quiet_since: float | None = None
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for messages in batch.values():
                for m in messages:
                    records.append(
                        Published(
                            partition=m.partition,
                            offset=m.offset,
                            key=m.key.decode(),
                            headers={k: v.decode() for k, v in m.headers},
                            value=orjson.loads(m.value),
                        )
                    )
            now = time.monotonic()
            if batch:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            settled = not settle or (quiet_since is not None and now - quiet_since > 0.5)
            if len(records) >= at_least and settled:
                return records
            if now > deadline:
                raise AssertionError(f"the topic holds {len(records)} records, not {at_least}")
    finally:
        await consumer.stop()


async def wait_for_topic(kafka: KafkaSettings, deadline: float) -> None:
    """Until the relay has created its topic (bounded)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        while kafka.topic not in await admin.list_topics():
            if time.monotonic() > deadline:
                raise AssertionError(f"no topic {kafka.topic}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


CONTEXT = EventContext(
    correlation_id="corr-1",
    causation_id="cause-1",
    actor="test",
    occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def item(product_id: str, qty: int = 1, price: str = "2.50") -> LineItem:
    """A line item."""
    return LineItem(product_id=product_id, name="Thing", price=Decimal(price), qty=qty)


def lifecycle(order_id: str, n: int) -> list[OrderEvent]:
    """A few events of one order, varied by `n`: placed, items added and removed, paid or
    cancelled."""
    first, second = f"sku-{n % 5}", f"sku-{(n + 2) % 5}"
    total = Decimal("2.50") * (1 + n % 3)
    events: list[OrderEvent] = [
        OrderPlaced(
            order_id=order_id,
            customer_id=f"c-{n % 7}",
            items=(item(first, 1 + n % 3),),
            total=total,
        ),
        ItemAdded(item=item(second, 2), total=total + Decimal("5.00")),
    ]
    if n % 2:
        events.append(ItemRemoved(product_id=second, total=total))
    if n % 3 == 0:
        events.append(OrderCancelled(reason="changed my mind"))
    else:
        events.append(PaymentTaken(amount=total, method="card", transaction_id=f"t-{n}"))
    return events


async def write_orders(store: EventStore, count: int, *, tag: str = "o") -> list[str]:
    """`count` orders with a few events each, one append per event (so their events
    interleave in the log with the other orders')."""
    order_ids = [f"{tag}-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    lives = [lifecycle(order_id, n) for n, order_id in enumerate(order_ids)]
    for step in range(max(len(life) for life in lives)):
        for order_id, life in zip(order_ids, lives, strict=True):
            if step < len(life):
                new = encode(life[step], CONTEXT, uuid.uuid4())
                await store.append(order_stream(order_id), [new], ANY)
    return order_ids


async def order_log(store: EventStore) -> list[RecordedEvent]:
    """Every order event of the log, in log order."""
    return await store.read_all(filter=ORDER_EVENTS)


async def eventually(check: Any, within: float = 30.0) -> None:
    """Wait until the async `check()` holds (bounded)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
