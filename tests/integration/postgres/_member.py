"""A member process of a persistent-subscription group, for the tests:

    python -m tests.integration.postgres._member URL GROUP CONSUMERS

opens a store on URL, connects CONSUMERS consumers to the $all group GROUP, prints `ready`, then
one line per delivery (`<stream> <version> <retry_count>`). An event seen for the first time is
parked, a replayed one acknowledged. Runs until killed."""

from __future__ import annotations

import asyncio
import sys

from eventstore.port import NackAction, PersistentSubscription
from eventstore.postgres import PostgresEventStore


async def consume(sub: PersistentSubscription, seen: set[object]) -> None:
    async for event in sub:
        print(event.stream, event.version, event.retry_count, flush=True)
        if event.id in seen:
            await sub.ack(event)
        else:
            seen.add(event.id)
            await sub.nack(event, NackAction.PARK)


async def main(url: str, group: str, consumers: int) -> None:
    store = await PostgresEventStore.open(url, pool_size=3)
    subs = [await store.groups.read_subscription(group) for _ in range(consumers)]
    print("ready", flush=True)
    seen: set[object] = set()
    await asyncio.gather(*(consume(sub, seen) for sub in subs))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
