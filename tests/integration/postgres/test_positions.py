"""Global positions subscribers can trust: under concurrent appenders from several connections and
processes, some holding their transaction open for a random while, every catch-up reader sees
every event exactly once, in position order."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import uuid

import asyncpg

from eventstore.port import NO_STREAM, EventFilter, NewEvent, RecordedEvent
from eventstore.postgres import PostgresEventStore
from eventstore.postgres.schema import POSITION_LOCK
from tests.support.postgres_db import fresh_database

# A separate process appending through its own store (its own writer and connections).
_APPENDER = """
import asyncio, sys, uuid
from eventstore.port import NO_STREAM, NewEvent
from eventstore.postgres import PostgresEventStore

async def main(url, prefix, count):
    store = await PostgresEventStore.open(url, pool_size=3)
    async def one(n):
        event = NewEvent(id=uuid.uuid4(), type="Ordered", data=b"{}")
        await store.append(f"{prefix}-{n}", [event], NO_STREAM)
        print(event.id, flush=True)
    try:
        await asyncio.gather(*(one(n) for n in range(count)))
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def events(count: int, event_type: str = "Ordered") -> list[NewEvent]:
    return [NewEvent(id=uuid.uuid4(), type=event_type, data=b"{}") for _ in range(count)]


async def slow_appender(url: str, prefix: str, rounds: int, seed: int) -> list[uuid.UUID]:
    """Appends as the writer does (position lock, es_append, commit), but holds each
    transaction open for a random while before committing. Its events are of a rare type."""
    rng = random.Random(seed)
    conn = await asyncpg.connect(url)
    written: list[uuid.UUID] = []
    try:
        for n in range(rounds):
            batch = events(rng.randint(1, 3), "Rare")
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", POSITION_LOCK)
                status = await conn.fetchval(
                    "SELECT status FROM es_append($1, 0, $2, $3, $4, $5, $6, now())",
                    f"{prefix}-slow{seed}-{n}",
                    [e.id for e in batch],
                    [e.type for e in batch],
                    [e.data for e in batch],
                    [e.metadata for e in batch],
                    [e.content_type for e in batch],
                )
                assert status == 0
                await asyncio.sleep(rng.uniform(0, 0.05))
            written += [e.id for e in batch]
    finally:
        await conn.close()
    return written


async def store_appender(
    store: PostgresEventStore, prefix: str, count: int, seed: int
) -> list[uuid.UUID]:
    rng = random.Random(seed)

    async def one(n: int) -> list[uuid.UUID]:
        await asyncio.sleep(rng.uniform(0, 0.3))
        batch = events(rng.randint(1, 3))
        await store.append(f"{prefix}-s{seed}-{n}", batch, NO_STREAM)
        return [e.id for e in batch]

    results = await asyncio.gather(*(one(n) for n in range(count)))
    return [event_id for ids in results for event_id in ids]


async def subscriber(
    store: PostgresEventStore, prefix: str, into: list[RecordedEvent], *types: str
) -> None:
    """A catch-up subscriber from the start, until the marker appended last. A filter on a rare
    type makes most of its pages short, so it often records "scanned up to the head"."""
    wanted = (*types, "Last") if types else ()
    selection = EventFilter(stream_prefixes=(prefix,), event_types=wanted)
    async for event in store.subscribe_all(filter=selection):
        into.append(event)
        if event.stream == f"{prefix}-zz-last":
            return


async def pager(
    store: PostgresEventStore, prefix: str, done: asyncio.Event, into: list[RecordedEvent]
) -> None:
    """Polls read_all in small pages from its last position, as a hand-written reader would."""
    selection = EventFilter(stream_prefixes=(prefix,))
    last = 0
    while True:
        finished = done.is_set()
        page = await store.read_all(from_position=last + 1, limit=7, filter=selection)
        into.extend(page)
        if page:
            last = page[-1].position
        elif finished:
            return
        else:
            await asyncio.sleep(0.005)


def assert_exactly_once_in_order(seen: list[RecordedEvent], expected: set[uuid.UUID]) -> None:
    positions = [e.position for e in seen]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions), "an event was delivered twice"
    ids = [e.id for e in seen]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected, f"missing {len(expected - set(ids))} events"


async def test_concurrent_appenders_and_readers_see_every_event_once_in_order() -> None:
    prefix = f"pos{uuid.uuid4().hex[:8]}"
    async with fresh_database() as url:
        stores = [await PostgresEventStore.open(url, pool_size=3) for _ in range(3)]
        try:
            seen_live: list[list[RecordedEvent]] = [[] for _ in stores]
            paged: list[list[RecordedEvent]] = [[], []]
            done = asyncio.Event()
            readers = [
                asyncio.create_task(subscriber(s, prefix, seen))
                for s, seen in zip(stores, seen_live, strict=True)
            ]
            readers += [
                asyncio.create_task(pager(stores[n], prefix, done, paged[n])) for n in range(2)
            ]
            sparse: list[list[RecordedEvent]] = [[] for _ in stores]
            readers += [
                asyncio.create_task(subscriber(s, prefix, seen, "Rare"))
                for s, seen in zip(stores, sparse, strict=True)
            ]
            processes = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    _APPENDER,
                    url,
                    f"{prefix}-p{n}",
                    "60",
                    stdout=subprocess.PIPE,
                )
                for n in range(2)
            ]
            written = await asyncio.gather(
                *(store_appender(s, prefix, 40, seed) for seed, s in enumerate(stores)),
                *(slow_appender(url, prefix, 12, seed) for seed in range(3)),
            )
            expected = {event_id for ids in written for event_id in ids}
            for process in processes:
                out, _ = await asyncio.wait_for(process.communicate(), 60)
                assert process.returncode == 0
                expected |= {uuid.UUID(line) for line in out.decode().split()}
            assert len(expected) > 200
            rare = {event_id for ids in written[len(stores) :] for event_id in ids}

            # The very last event, appended after everything else has committed, ends the
            # subscribers once they reach it.
            marker = events(1, "Last")
            await stores[0].append(f"{prefix}-zz-last", marker, NO_STREAM)
            expected.add(marker[0].id)
            done.set()
            await asyncio.wait_for(asyncio.gather(*readers), 30)
        finally:
            for store in stores:
                await store.close()

    for seen in [*seen_live, *paged]:
        assert_exactly_once_in_order(seen, expected)
    for seen in sparse:
        assert_exactly_once_in_order(seen, rare | {marker[0].id})
    # Group commit happened: the in-process stores took several appends per transaction.
    assert sum(s.writer_stats.writes for s in stores) > sum(s.writer_stats.commits for s in stores)
