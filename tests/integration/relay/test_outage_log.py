"""What `orders relay kafka` logs when its broker is away or refuses it, counted line by line: one
line per outage (the Kafka client's own warnings folded into it), one when it ends with its
count, and for a broker that refuses the idempotent producer one line naming
`KAFKA_IDEMPOTENT=false`.

Tansu (tests/support/kafka_broker.py) is a real Kafka-protocol broker; its memory storage engine
answers the idempotent producer's InitProducerId with UnknownError, so the refusal is met for real,
as an operator meets it on a broker without idempotence (or without the IdempotentWrite permission).
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from eventstore.postgres.store import PostgresEventStore
from relay.config import KafkaSettings
from tests.integration.relay.topic import eventually, order_log, read_topic, write_orders
from tests.support.kafka_broker import _free_port, running_tansu
from tests.support.postgres_db import create_database, drop_database
from tests.support.processes import orders_process


@pytest.fixture
async def database() -> AsyncIterator[str]:
    url = await create_database("orders_relaylog")
    try:
        yield url
    finally:
        await drop_database(url)


class RelayProcess:
    """`orders relay kafka` as an operator starts it, its log in a file."""

    def __init__(self, log: Path, process: subprocess.Popen[bytes]) -> None:
        self.log_path = log
        self.process = process

    def lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def running(self) -> bool:
        assert self.process.poll() is None, "\n".join(self.lines())
        return True


@contextmanager
def relay_process(tmp: Path, env: dict[str, str]) -> Iterator[RelayProcess]:
    log = tmp / "relay.log"
    env = {**env, "DATA_DIR": str(tmp / "data")}
    with orders_process(["relay", "kafka"], env, log) as process:
        relay = RelayProcess(log, process)
        yield relay
    assert process.returncode == 0, "\n".join(relay.lines())


def _has(relay: RelayProcess, text: str) -> bool:
    return relay.running() and any(text in line for line in relay.lines())


async def test_a_broker_outage_is_one_line_and_one_with_its_count_when_it_ends(
    database: str, tmp_path: Path
) -> None:
    port = _free_port()
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", idempotent=False)
    store = await PostgresEventStore.open(database)
    env = {
        "DATABASE_URL": database,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_IDEMPOTENT": "false",
        # a delivery the broker does not answer fails (and the relay meets the outage) soon
        "KAFKA_REQUEST_TIMEOUT_MS": "2000",
    }
    try:
        with ExitStack() as first, relay_process(tmp_path, env) as relay:
            first.enter_context(running_tansu(tmp_path, port))
            await write_orders(store, 3, tag="before")
            published_before = len(await order_log(store))
            await read_topic(kafka, at_least=published_before, settle=False)
            assert not any("event=outage" in line for line in relay.lines()), relay.lines()
            before = len(relay.lines())

            first.close()  # the broker goes away under the relay; orders keep coming
            await write_orders(store, 3, tag="during")

            async def relay_met_it() -> bool:
                # the relay's own delivery failed: it stopped consuming its group
                return _has(relay, "partitions=-")

            await eventually(relay_met_it, within=30)
            during = relay.lines()[before:]
            with running_tansu(tmp_path, port):

                async def over() -> bool:
                    return _has(relay, "event=outage_over part=kafka")

                await eventually(over, within=60)
                # the new broker (memory, empty) gets what was written while it was away
                missed = len(await order_log(store)) - published_before
                await read_topic(kafka, at_least=missed, within=60, settle=False)
            lines = relay.lines()[before:]
    finally:
        await store.close()
    starts = [line for line in during if "event=outage " in line]
    assert len(starts) == 1, "\n".join(during)
    assert "part=kafka" in starts[0], starts
    shown = [line for line in lines if "level=DEBUG" not in line]
    assert not any("logger=aiokafka" in line for line in shown), "\n".join(shown)
    assert "Traceback" not in "\n".join(lines)
    assert len(lines) <= 12, "\n".join(lines)  # the outage, the relay's own moves, its end
    (ended,) = [line for line in lines if "event=outage_over part=kafka" in line]
    failures = int(ended.split("failures=", 1)[1].split()[0])
    assert failures > 1, ended  # the attempts it held back are counted, not logged


async def test_a_broker_refusing_the_idempotent_producer_gets_one_line_naming_the_setting(
    database: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database, "LOG_LEVEL": "DEBUG"}  # DEBUG: the retries are seen
    with running_tansu(tmp_path) as bootstrap:
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap  # KAFKA_IDEMPOTENT left at its default
        with relay_process(tmp_path, env) as relay:

            async def retried() -> bool:
                relay.running()
                return sum("event=relay_retry" in line for line in relay.lines()) >= 4

            await eventually(retried, within=60)
            lines = relay.lines()
    shown = [line for line in lines if "level=DEBUG" not in line]  # what INFO would show
    said = [line for line in shown if "KAFKA_IDEMPOTENT=false" in line]
    assert len(said) == 1, "\n".join(lines)
    assert "level=WARNING" in said[0], said
    assert "event=outage part=kafka" in said[0], said
    retries = [line for line in lines if "event=relay_retry" in line]
    assert all("IdempotenceRefused" in line for line in retries), retries
    assert not any("InitProducerIdRequest" in line for line in lines), "\n".join(lines)
    assert "Traceback" not in "\n".join(lines)


async def test_a_relay_started_with_the_broker_down_says_so_once_and_publishes_when_it_is_up(
    database: str, tmp_path: Path
) -> None:
    port = _free_port()
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", idempotent=False)
    store = await PostgresEventStore.open(database)
    env = {
        "DATABASE_URL": database,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_IDEMPOTENT": "false",
        "LOG_LEVEL": "DEBUG",  # the retries are seen
    }
    try:
        await write_orders(store, 2, tag="waiting")
        with relay_process(tmp_path, env) as relay:

            async def said() -> bool:
                return _has(relay, "event=outage part=kafka")

            await eventually(said, within=30)

            async def retried() -> bool:
                return sum("event=relay_retry" in line for line in relay.lines()) >= 4

            await eventually(retried, within=30)
            waiting = [line for line in relay.lines() if "level=DEBUG" not in line]
            with running_tansu(tmp_path, port):
                await read_topic(kafka, at_least=len(await order_log(store)), within=60)

                async def over() -> bool:
                    return _has(relay, "event=outage_over part=kafka")

                await eventually(over, within=30)
            lines = relay.lines()
    finally:
        await store.close()
    assert sum("event=outage " in line for line in waiting) == 1, "\n".join(waiting)
    shown = [line for line in lines if "level=DEBUG" not in line]
    assert not any("logger=aiokafka" in line for line in shown), "\n".join(shown)
    assert "Traceback" not in "\n".join(lines)
