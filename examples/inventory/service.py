"""The inventory consumer: reads `order-events` in the consumer group `inventory` and applies each
record to its SQLite store. Offsets live in that store, next to the reservations (Kafka's
committed offsets are not used), so what was applied and where to resume never disagree."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from examples.inventory.store import InventoryStore

logger = logging.getLogger("inventory")


@dataclass(frozen=True, slots=True, kw_only=True)
class InventorySettings:
    """Where the service reads and keeps its state."""

    bootstrap_servers: str
    topic: str = "order-events"
    group: str = "inventory"
    database: Path = Path("inventory.db")
    # touched every few seconds while consuming (a container's health check tests its age)
    health_file: Path | None = None

    @classmethod
    def from_env(cls) -> InventorySettings:
        """KAFKA_BOOTSTRAP_SERVERS (required), KAFKA_TOPIC, INVENTORY_GROUP, INVENTORY_DB,
        HEALTH_FILE."""
        health = os.environ.get("HEALTH_FILE")
        return cls(
            bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
            topic=os.environ.get("KAFKA_TOPIC", "order-events"),
            group=os.environ.get("INVENTORY_GROUP", "inventory"),
            database=Path(os.environ.get("INVENTORY_DB", "inventory.db")),
            health_file=Path(health) if health else None,
        )


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On every assignment, resume each partition where the store says (else the beginning)."""

    def __init__(self, consumer: Any, store: InventoryStore) -> None:
        self._consumer = consumer
        self._store = store

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        for tp in assigned:
            offset = self._store.next_offset(tp.topic, tp.partition)
            if offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)


async def consume(settings: InventorySettings, store: InventoryStore, stop: asyncio.Event) -> None:
    """Apply records until `stop` is set."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    consumer.subscribe([settings.topic], listener=_SeekToStoredOffsets(consumer, store))
    await consumer.start()
    touched = float("-inf")
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=1000)
            if settings.health_file is not None and time.monotonic() - touched > 5:
                settings.health_file.touch()
                touched = time.monotonic()
            for tp, messages in batch.items():
                for message in messages:
                    envelope = orjson.loads(message.value)
                    if not store.apply(tp.topic, tp.partition, message.offset, envelope):
                        logger.info("event=duplicate_skipped event_id=%s", envelope["eventId"])
    finally:
        await consumer.stop()


async def main() -> None:
    """Run until SIGINT or SIGTERM."""
    import signal

    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    settings = InventorySettings.from_env()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    store = InventoryStore(settings.database)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await consume(settings, store, stop)
    finally:
        store.close()
