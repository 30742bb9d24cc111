"""Running relay workers: on their own (`orders relay kafka`) or inside `orders serve` (the
embedded store, whose persistent-subscription groups live in the serving process).

The Kafka client is imported only when relays are built: `orders serve` without
KAFKA_BOOTSTRAP_SERVERS, and every other command, start without it (aiokafka takes 110-150 ms to
import)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING

from eventstore.port import StoreWithGroups
from relay.config import KafkaSettings

if TYPE_CHECKING:
    from relay.publisher import Publisher
    from relay.worker import KafkaRelay, RelaySettings

logger = logging.getLogger(__name__)


def build_relays(
    store: StoreWithGroups,
    kafka: KafkaSettings,
    *,
    workers: int = 1,
    settings: RelaySettings | None = None,
) -> list[KafkaRelay]:
    """`workers` relay workers on `store`, each with a producer of its own."""
    from relay.publisher import KafkaPublisher
    from relay.worker import KafkaRelay

    opener = partial(KafkaPublisher.open, kafka)

    async def open_publisher() -> Publisher:
        return await opener()

    return [KafkaRelay(store, open_publisher, settings=settings) for _ in range(workers)]


@contextlib.asynccontextmanager
async def running_relays(
    store: StoreWithGroups,
    kafka: KafkaSettings | None,
    *,
    workers: int = 1,
    settings: RelaySettings | None = None,
) -> AsyncIterator[list[KafkaRelay]]:
    """Relay workers running in the background for the block (none when `kafka` is None)."""
    if kafka is None:
        yield []
        return
    relays = build_relays(store, kafka, workers=workers, settings=settings)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop), name=f"relay-{r.worker_id}") for r in relays]
    logger.info(
        "event=relay_started workers=%d topic=%s idempotent=%s",
        workers,
        kafka.topic,
        kafka.idempotent,
    )
    try:
        yield relays
    finally:
        stop.set()
        await asyncio.gather(*tasks)
