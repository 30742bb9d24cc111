"""A relay process killed mid-stream (kill -9) and started again loses nothing, and republishes
only what it had not acked durably: events after the group's checkpoint. `orders relay kafka`
runs as a real subprocess on PostgreSQL while orders keep being written."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventstore.postgres import PostgresEventStore
from relay.config import KafkaSettings
from relay.worker import GROUP
from tests.integration.relay.topic import eventually, order_log, read_topic, write_orders
from tests.support.postgres_db import create_database, drop_database
from tests.support.processes import REPO_ROOT


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    url = await create_database("orders_relay")
    try:
        yield url
    finally:
        await drop_database(url)


def start_relay(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "api", "relay", "kafka"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def test_a_relay_killed_mid_stream_loses_nothing_and_repeats_only_unacked(
    database_url: str, kafka: KafkaSettings, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("ESDB_URL", "REDIS_URL")},
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_TOPIC": kafka.topic,
        "KAFKA_IDEMPOTENT": "false",
        "KAFKA_PARTITIONS": str(kafka.partitions),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "relay.log"
    store = await PostgresEventStore.open(database_url, pool_size=2)
    stop_writing = asyncio.Event()

    async def keep_writing() -> None:
        while not stop_writing.is_set():
            await write_orders(store, 20, tag="crash")
            await asyncio.sleep(0.05)

    relay = start_relay(env, log)
    writer = asyncio.create_task(keep_writing())
    try:
        # mid-stream: the relay has published some, and the writer goes on meanwhile
        before = await read_topic(kafka, at_least=300, within=60, settle=False)
        await asyncio.sleep(1.0)  # past a checkpoint or two
        relay.send_signal(signal.SIGKILL)
        relay.wait(10)
        checkpoint = (await store.groups.get_subscription_info(GROUP)).checkpoint
        assert checkpoint is not None
        relay = start_relay(env, log)
        await asyncio.sleep(1.0)
        stop_writing.set()
        await writer
        events = await order_log(store)
        assert len(events) > len(before)  # killed before the end of the stream
        records = await read_topic(kafka, at_least=len(events), within=60)

        async def all_acked() -> bool:
            info = await store.groups.get_subscription_info(GROUP)
            return info.checkpoint is not None and info.checkpoint >= events[-1].position

        await eventually(all_acked)
    finally:
        stop_writing.set()
        await asyncio.gather(writer, return_exceptions=True)
        relay.send_signal(signal.SIGTERM)
        code = relay.wait(15)
        await store.close()
    assert code == 0, log.read_text()[-3000:]

    published = Counter(r.event_id for r in records)
    position = {str(e.id): e.position for e in events}
    assert set(published) == set(position), "an event was lost or invented"
    repeated = {event_id for event_id, n in published.items() if n > 1}
    # only what was not acked durably before the kill is published again
    assert all(position[event_id] > checkpoint for event_id in repeated), sorted(
        position[e] for e in repeated
    )
    assert max(published.values()) <= 2
    # one order's events: first publications in the order of its versions
    first_seen: dict[str, list[str]] = {}
    seen: set[str] = set()
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.event_id not in seen:
            seen.add(record.event_id)
            first_seen.setdefault(record.key, []).append(record.event_id)
    for event in events:
        assert event.stream.removeprefix("order-") in first_seen
    by_stream: dict[str, list[str]] = {}
    for event in events:
        by_stream.setdefault(event.stream.removeprefix("order-"), []).append(str(event.id))
    assert first_seen == by_stream
