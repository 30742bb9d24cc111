"""Losing PostgreSQL is `StoreUnavailable` (the API's retryable UNAVAILABLE), never another error
and never a wrong answer."""

from __future__ import annotations

import asyncpg
import pytest

from eventstore.port import ANY, NO_STREAM, StoreUnavailable
from eventstore.postgres import PostgresEventStore
from tests.contract.conftest import new_events, unique_stream
from tests.support.postgres_db import session_database_url
from tests.support.processes import free_port


async def test_an_unreachable_server_is_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        await PostgresEventStore.open(f"postgresql://postgres@127.0.0.1:{free_port()}/none")


async def kill_connections(url: str) -> None:
    """End every connection of the database but our own: the store's pool, its listener, and
    whatever else the session has open there."""
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()


async def test_connections_killed_under_the_store_answer_unavailable_then_recover() -> None:
    url = await session_database_url()
    store = await PostgresEventStore.open(url, pool_size=2)
    stream = unique_stream("outage")
    try:
        await store.append(stream, new_events(1), NO_STREAM)
        await kill_connections(url)
        outcomes: list[int | str] = []
        for _ in range(4):
            try:
                outcomes.append(len(await store.read_stream(stream)))
            except StoreUnavailable:
                outcomes.append("unavailable")
        # The pool replaces dead connections: reads recover, and none answered wrongly.
        assert set(outcomes) <= {1, "unavailable"}
        assert outcomes[-1] == 1

        await kill_connections(url)
        written: list[int | str] = []
        for _ in range(4):
            try:
                written.append((await store.append(stream, new_events(1), ANY)).version)
            except StoreUnavailable:
                written.append("unavailable")
        # The writer lives on: every append either failed as unavailable or was written.
        versions = [v for v in written if isinstance(v, int)]
        assert versions == list(range(2, 2 + len(versions)))
        assert isinstance(written[-1], int)
        assert len(await store.read_stream(stream)) == 1 + len(versions)
    finally:
        await store.close()
