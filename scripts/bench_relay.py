"""Kafka relay throughput: 100,000 order events from a fresh store to a real Kafka-protocol broker
(Tansu, in memory, on loopback), next to the Redis projector's catch-up over the same log.

Per run: the projector's catch-up from an empty Redis (read + decode + apply), then the relay
through a fresh persistent-subscription group to a fresh topic, timed until every event is acked
in the store after the broker acknowledged it (acks=all). The producer is not idempotent: Tansu's
memory engine refuses it. Prints a markdown table.
Usage: .venv/bin/python -m scripts.bench_relay [--events 100000] [--runs 3] [--store postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from rich.progress import Progress

from eventstore.port import EventStore, StoreWithGroups
from projections.embedded_redis import start_embedded_redis
from projections.recovery import recover
from projections.redis_store import RedisViewStore
from relay.config import KafkaSettings
from relay.main import running_relays
from relay.worker import RelaySettings
from scripts import _postgres
from scripts.bench_projector import STORE_NAMES, console, fill, open_store
from tests.support.kafka_broker import running_tansu

TARGET = 0.5
"""The relay's rate as a fraction of the projector's catch-up rate it must reach."""


async def catch_up_rate(store: EventStore, views: RedisViewStore) -> float:
    await views.redis.flushdb()
    started = time.perf_counter()
    result = await recover(store, views)
    return (result.applied + result.duplicates) / (time.perf_counter() - started)


async def relay_rate(store: StoreWithGroups, bootstrap: str, run: int, written: int) -> float:
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap, topic=f"bench-{run}", idempotent=False, partitions=6
    )
    settings = RelaySettings(group=f"kafka-relay-bench-{run}")
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("relaying", total=written)
        started = time.perf_counter()
        async with running_relays(store, kafka, settings=settings) as relays:
            while (published := sum(r.published for r in relays)) < written:
                bar.update(task, completed=published)
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
    return written / elapsed


async def main(events: int, runs: int, kind: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory)
        store, database = await open_store(kind, data)
        server = await start_embedded_redis(data)
        redis = server.client()
        try:
            with running_tansu(data) as bootstrap:
                views = RedisViewStore(redis, prefix="bench")
                written = await fill(store, events)
                console.print(f"wrote {written} events")
                rounds = []
                for n in range(runs):
                    projector = await catch_up_rate(store, views)
                    relay = await relay_rate(store, bootstrap, n, written)
                    rounds.append({"projector": projector, "relay": relay})
                    console.print(
                        f"run {n + 1}/{runs}: relay {relay:,.0f} events/s, "
                        f"projector catch-up {projector:,.0f} events/s"
                    )
        finally:
            await redis.aclose()
            await server.stop()
            await store.close()
            if database is not None:
                await _postgres.drop_database(database)
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    best = {key: max(r[key] for r in rounds) for key in rounds[0]}
    print(
        f"Kafka relay over {written:,} events ({STORE_NAMES[kind]}, Tansu in memory, acks=all), "
        f"median and best of {runs} runs:\n"
    )
    print("| what | events/s (median) | best |")
    print("|---|---:|---:|")
    print(f"| Redis projector catch-up | {median['projector']:,.0f} | {best['projector']:,.0f} |")
    print(f"| **Kafka relay** | {median['relay']:,.0f} | {best['relay']:,.0f} |")
    ratio = median["relay"] / median["projector"]
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(f"\nRelay / projector (median): {ratio:.2f}x: {verdict} the {TARGET}x target.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", choices=tuple(STORE_NAMES), default="embedded")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.runs, arguments.store))
