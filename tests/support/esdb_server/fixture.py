"""A context manager for tests elsewhere: an EventStoreDB-compatible server on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from .server import open_server


@asynccontextmanager
async def run_test_server(data_dir: Path) -> AsyncIterator[str]:
    """Yields `esdb://127.0.0.1:PORT?Tls=false` for a server over a store in `data_dir`.

    The server and its store are stopped and closed on exit.
    """
    server = await open_server(data_dir)
    try:
        yield server.url
    finally:
        await server.stop()
        await server.store.close()
