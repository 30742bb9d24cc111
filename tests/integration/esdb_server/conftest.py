"""Fixtures: a test server on a free port over a fresh data directory, and real esdbclients."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from esdbclient import AsyncEventStoreDBClient, EventStoreDBClient

from tests.support.esdb_server.fixture import run_test_server


@pytest.fixture
async def server_url(tmp_path: Path) -> AsyncIterator[str]:
    """A server for the async client (same event loop as the test)."""
    async with run_test_server(tmp_path) as url:
        yield url


@pytest.fixture
async def aclient(server_url: str) -> AsyncIterator[AsyncEventStoreDBClient]:
    """The asyncio client, connected."""
    client = AsyncEventStoreDBClient(server_url)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def threaded_url(tmp_path: Path) -> Iterator[str]:
    """A server on its own loop in a thread, so the blocking sync client can be used in tests."""
    loop = asyncio.new_event_loop()
    ready: list[str] = []
    started = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        async with run_test_server(tmp_path) as url:
            ready.append(url)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10), "server did not start"
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        if thread.is_alive():  # say where shutdown hangs instead of failing on loop.close()
            for task in asyncio.all_tasks(loop):
                # Not task.print_stack(): gRPC's Cython frames carry no line numbers.
                where = [f"{f.f_code.co_filename}:{f.f_lineno}" for f in task.get_stack()]
                sys.stderr.write(f"{task.get_name()} stuck at {where}\n")
            pytest.fail("the threaded test server did not stop within 30 s")
        loop.close()


@pytest.fixture
def client(threaded_url: str) -> Iterator[EventStoreDBClient]:
    """The sync client."""
    sync_client = EventStoreDBClient(threaded_url)
    try:
        yield sync_client
    finally:
        sync_client.close()
