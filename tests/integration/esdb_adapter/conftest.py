"""Fixtures: the EventStoreDB adapter against the wire-compatible test server, over real gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventstore.esdb import EventStoreDBStore
from tests.support.esdb_server.fixture import run_test_server


@pytest.fixture
async def esdb_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh test server's `esdb://` URL."""
    async with run_test_server(tmp_path / "esdb") as url:
        yield url


@pytest.fixture
async def esdb(esdb_url: str) -> AsyncIterator[EventStoreDBStore]:
    """The adapter, connected to the test server."""
    store = await EventStoreDBStore.connect(esdb_url)
    try:
        yield store
    finally:
        await store.close()
