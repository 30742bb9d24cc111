"""Throwaway PostgreSQL databases for tests, on the server at `TEST_POSTGRES_URL` (default: the
local one, trust auth, as `.ci/run` sets it up).

`session_database_url()` creates one database per test session on first use (unique name); the
root conftest drops it when the session ends. `fresh_database()` makes one for a single test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

_session_database: str | None = None


def _url_of(database: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


async def create_database(prefix: str = "orders_test") -> str:
    """A new empty database; its URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _url_of(name)


async def drop_database(url: str) -> None:
    """Drop the database at `url`, disconnecting whatever still uses it."""
    name = url.rpartition("/")[2]
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def session_database_url() -> str:
    """The test session's shared database (created on first use)."""
    global _session_database
    if _session_database is None:
        _session_database = await create_database()
    return _session_database


def created_session_database() -> str | None:
    """The session database, if one was created."""
    return _session_database


@asynccontextmanager
async def fresh_database(prefix: str = "orders_test") -> AsyncIterator[str]:
    """A database of its own for one test, dropped afterwards."""
    url = await create_database(prefix)
    try:
        yield url
    finally:
        await drop_database(url)


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A URL of the session database whose `search_path` is a new schema of its own: an empty
    store for one test at a fraction of a new database's cost. Dropped afterwards."""
    url = await session_database_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    try:
        yield f"{url}?search_path={schema}"
    finally:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()
