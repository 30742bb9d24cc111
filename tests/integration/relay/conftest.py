"""A real Kafka-protocol broker (Tansu, in memory) for the relay tests, one per session; each test
publishes to a topic of its own. Tests that drive an event store take `store`: each adapter of
the contract suite in turn."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventstore.port import StoreWithGroups
from relay.config import KafkaSettings
from tests.contract.conftest import ADAPTERS
from tests.support.kafka_broker import running_tansu


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of a Tansu broker running for the whole session."""
    with running_tansu(tmp_path_factory.mktemp("tansu")) as bootstrap:
        yield bootstrap


@pytest.fixture
def topic() -> str:
    """A topic of this test's own."""
    return f"order-events-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kafka(kafka_bootstrap: str, topic: str) -> KafkaSettings:
    """Relay settings for the test broker: Tansu's memory engine refuses the idempotent
    producer (InitProducerId answers UnknownError), so idempotence is off here."""
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic=topic, idempotent=False, partitions=3
    )


@pytest.fixture(params=list(ADAPTERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreWithGroups]:
    """A ready event store of each adapter in turn."""
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened
