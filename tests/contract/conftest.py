"""The contract suite's fixture: `store`, one fresh `StoreWithGroups` per test, for every adapter.

An adapter joins the whole suite by adding ONE entry to `ADAPTERS`: a name mapped to a factory that,
given the test's `tmp_path`, returns an async context manager yielding a ready store (and closing it
on exit). For example, the EventStoreDB adapter against a test server:

    ADAPTERS["esdb"] = esdb_adapter   # async with esdb_adapter(tmp_path) as store: ...

Tests use unique stream names (uuid) and filter the global log by those names, so the suite also
runs against a shared server that already holds other events.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from eventstore.embedded import SQLiteEventStore
from eventstore.memory import InMemoryEventStore
from eventstore.port import NewEvent, StoreWithGroups

T = TypeVar("T")

AdapterFactory = Callable[[Path], AbstractAsyncContextManager[StoreWithGroups]]


@asynccontextmanager
async def embedded_adapter(tmp_path: Path) -> AsyncIterator[StoreWithGroups]:
    """A fresh SQLite store in the test's temporary directory."""
    store = await SQLiteEventStore.open(tmp_path / "embedded-store")
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def esdb_adapter(tmp_path: Path) -> AsyncIterator[StoreWithGroups]:
    """The EventStoreDB adapter over real gRPC, against a fresh wire-compatible test server."""
    from eventstore.esdb import EventStoreDBStore
    from tests.support.esdb_server.fixture import run_test_server

    # A finer message-timeout tick than EventStoreDB's 1 s keeps the persistent tests quick.
    async with run_test_server(tmp_path / "esdb-server") as url:
        store = await EventStoreDBStore.connect(url)
        try:
            yield store
        finally:
            await store.close()


@asynccontextmanager
async def postgres_adapter(tmp_path: Path) -> AsyncIterator[StoreWithGroups]:
    """The PostgreSQL adapter on a real server: a fresh schema of the session's throwaway
    database."""
    from eventstore.postgres import PostgresEventStore
    from tests.support.postgres_db import fresh_schema

    async with fresh_schema() as url:
        store = await PostgresEventStore.open(url, pool_size=4)
        try:
            yield store
        finally:
            await store.close()


ADAPTERS: dict[str, AdapterFactory] = {
    "embedded": embedded_adapter,
    "esdb": esdb_adapter,
    "postgres": postgres_adapter,
    "memory": lambda _tmp_path: InMemoryEventStore(),
}


@pytest.fixture(params=list(ADAPTERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreWithGroups]:
    """A ready store of each adapter in turn."""
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened


def unique_stream(prefix: str = "contract") -> str:
    """A stream name no other test (or earlier run on a shared server) uses."""
    return f"{prefix}-{uuid.uuid4().hex}"


def new_events(count: int, event_type: str = "Tested", start: int = 0) -> list[NewEvent]:
    """`count` events with fresh ids and distinguishable data."""
    return [
        NewEvent(
            id=uuid.uuid4(),
            type=event_type,
            data=b'{"n": %d}' % (start + index),
            metadata=b'{"actor": "contract"}',
        )
        for index in range(count)
    ]


@asynccontextmanager
async def closing(subscription: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close a catch-up subscription (an async generator on every adapter) when done."""
    try:
        yield subscription
    finally:
        aclose = getattr(subscription, "aclose", None)
        if aclose is not None:
            await aclose()
