"""A context manager for tests elsewhere: an EventStoreDB-compatible server on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from .server import open_server


@asynccontextmanager
async def run_test_server(data_dir: Path, *, timeout_tick: float = 1.0) -> AsyncIterator[str]:
    """Yields `esdb://127.0.0.1:PORT?Tls=false` for a server over a store in `data_dir`.

    The server and its store are stopped and closed on exit. `timeout_tick` is how often
    persistent-subscription message timeouts are checked (EventStoreDB: every second).
    """
    server = await open_server(data_dir, timeout_tick=timeout_tick)
    try:
        yield server.url
    finally:
        await server.stop()
        await server.store.close()
