"""Embedded event store throughput: appends/s with 1 vs many concurrent appenders.

Not a test. Each appender appends one event at a time to its own stream with an exact expected
version, as command handlers do; with group commit, concurrent appends share transactions (fsyncs).

    .venv/bin/python -m scripts.bench_store [--appends 2000] [--concurrency 1 50]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from eventstore.embedded import SQLiteEventStore
from eventstore.port import NewEvent, expect_version

EVENT = b'{"amount": "25.00", "method": "card", "transactionId": "t-1"}'
METADATA = b'{"schemaVersion": 2, "actor": "bench"}'


async def run(appends: int, concurrency: int) -> tuple[float, float]:
    """Appends/s and writes per commit for `appends` appends by `concurrency` appenders."""
    with tempfile.TemporaryDirectory() as directory:
        store = await SQLiteEventStore.open(Path(directory))
        try:
            per_appender = appends // concurrency

            async def appender() -> None:
                stream = f"order-{uuid.uuid4().hex}"
                version = 0
                for _ in range(per_appender):
                    event = NewEvent(
                        id=uuid.uuid4(), type="PaymentTaken", data=EVENT, metadata=METADATA
                    )
                    result = await store.append(stream, [event], expect_version(version))
                    version = result.version

            before = store.writer_stats
            started = time.perf_counter()
            await asyncio.gather(*(appender() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            after = store.writer_stats
        finally:
            await store.close()
    done = per_appender * concurrency
    commits = max(after.commits - before.commits, 1)
    return done / elapsed, (after.writes - before.writes) / commits


def main() -> None:
    """Print appends/s per concurrency level."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    options = parser.parse_args()
    print(f"{'appenders':>10} {'appends/s':>10} {'appends/commit':>15}")
    for concurrency in options.concurrency:
        rate, factor = asyncio.run(run(options.appends, concurrency))
        print(f"{concurrency:>10} {rate:>10.0f} {factor:>15.1f}")


if __name__ == "__main__":
    main()
