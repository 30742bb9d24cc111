"""The relay's side of Kafka: an aiokafka producer (and admin client, to create the topic), behind
the two calls the relay makes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from relay.config import KafkaSettings
from relay.message import KafkaMessage

logger = logging.getLogger(__name__)


Outcome = asyncio.Future[list[BaseException | None]]
"""Per record of a published batch: None once the broker acknowledged it, else its error."""


START_TIMEOUT = 10.0
"""Seconds a producer may take to start: aiokafka retries some refusals for ever (a broker that
refuses the idempotent producer's InitProducerIdRequest, every second)."""


class ProducerNotStarted(OSError):
    """The Kafka producer did not start in time (an outage of the relay's part `kafka`); with
    idempotence on, the likely cause is a broker that refuses it, and the message says what to
    set."""

    def __init__(self, idempotent: bool) -> None:
        hint = (
            "; if aiokafka logs 'Unexpected error during InitProducerIdRequest', the broker "
            "refuses the idempotent producer: set KAFKA_IDEMPOTENT=false"
            if idempotent
            else ""
        )
        super().__init__(f"the Kafka producer did not start within {START_TIMEOUT:g} s{hint}")


async def _outcome(futures: list[asyncio.Future[Any]]) -> list[BaseException | None]:
    results = await asyncio.gather(*futures, return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


class Publisher(Protocol):
    """Publishes records and says, per record, whether the broker acknowledged it."""

    async def publish(self, messages: Sequence[KafkaMessage]) -> Outcome:
        """Send all (in order); the returned future resolves, once the broker has answered for
        every record, to None for each acknowledged record, else its error."""
        ...

    async def close(self) -> None: ...


class KafkaPublisher:
    """An aiokafka producer with the relay's settings (acks=all, idempotence as configured)."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self.topic = topic

    @classmethod
    async def open(cls, settings: KafkaSettings) -> KafkaPublisher:
        """Create the topic if missing and start a producer; raises `KafkaError` or `OSError`
        when the broker cannot be reached."""
        await ensure_topic(settings)
        producer = AIOKafkaProducer(**settings.producer_options())
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await producer.start()
        except TimeoutError:
            await producer.stop()
            raise ProducerNotStarted(settings.idempotent) from None
        except BaseException:
            await producer.stop()
            raise
        return cls(producer, settings.topic)

    async def publish(self, messages: Sequence[KafkaMessage]) -> Outcome:
        # Sent in order without waiting in between: the producer keeps one batch in flight per
        # partition, so one order's records reach its partition in the order sent.
        futures: list[asyncio.Future[Any]] = []
        for message in messages:
            futures.append(
                await self._producer.send(
                    self.topic, value=message.value, key=message.key, headers=message.headers
                )
            )
        return asyncio.ensure_future(_outcome(futures))

    async def close(self) -> None:
        await self._producer.stop()


async def ensure_topic(settings: KafkaSettings) -> None:
    """Create the topic with the configured partitions unless it exists."""
    admin = AIOKafkaAdminClient(**settings.connection_options())
    await admin.start()
    try:
        if settings.topic in await admin.list_topics():
            return
        topic = NewTopic(
            settings.topic,
            num_partitions=settings.partitions,
            replication_factor=settings.replication_factor,
        )
        try:
            await admin.create_topics([topic])
            logger.info(
                "event=kafka_topic_created topic=%s partitions=%d",
                settings.topic,
                settings.partitions,
            )
        except TopicAlreadyExistsError:
            pass  # another relay was quicker
    finally:
        await admin.close()
