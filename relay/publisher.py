"""The relay's side of Kafka: an aiokafka producer (and admin client, to create the topic), behind
the two calls the relay makes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
)

from eventstore.outage_log import OUTAGES
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
            "; the broker may not grant the idempotent producer an id: if it never does, set "
            "KAFKA_IDEMPOTENT=false"
            if idempotent
            else ""
        )
        super().__init__(f"the Kafka producer did not start within {START_TIMEOUT:g} s{hint}")


class IdempotenceRefused(OSError):
    """The broker answered but refused the idempotent producer (its InitProducerId request: an
    older broker, a cluster without the IdempotentWrite permission, a broker that does not
    implement it). An outage of the relay's part `kafka` whose message says what to set."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(
            "the broker refuses the idempotent producer: set "
            "KAFKA_IDEMPOTENT=false, or allow IdempotentWrite on the cluster"
        )


_UNREACHABLE = (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError, KafkaTimeoutError)
"""Errors of a broker that did not answer (an outage), not of one that refused."""


def _refused_idempotence(producer: Any, error: BaseException) -> bool:
    """Whether `producer.start()` failed on the idempotent producer's InitProducerId request:
    start() bootstraps (the cluster's brokers are known after it) and then asks for a producer
    id, the only step left that can fail with an answer from the broker."""
    if not isinstance(error, KafkaError) or isinstance(error, _UNREACHABLE):
        return False
    return bool(producer.client.cluster.brokers())


async def _outcome(futures: list[asyncio.Future[Any]]) -> list[BaseException | None]:
    results = await asyncio.gather(*futures, return_exceptions=True)
    outcome = [r if isinstance(r, BaseException) else None for r in results]
    if None in outcome:
        # the broker acknowledged records: an outage of it (opened by the relay or by the
        # Kafka client's complaints) is over now, with its count
        OUTAGES.recovered("kafka")
    return outcome


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
        except BaseException as error:
            refused = settings.idempotent and _refused_idempotence(producer, error)
            await producer.stop()
            if refused:
                # The broker answers: an outage of it being away is over, and this one is not
                # fixed by waiting but by a setting, which its one line names.
                if not (OUTAGES.error_of("kafka") or "").startswith(IdempotenceRefused.__name__):
                    OUTAGES.recovered("kafka")
                raise IdempotenceRefused(error) from error
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
