"""The read side for the composition root: Redis (REDIS_URL or the embedded server), the live
feed, the queries and the projector workers, opened together and closed in reverse.

    async with open_read_side(store, redis_url=url, data_dir=data_dir) as read_side:
        await read_side.queries.get_order(order_id)

`orders serve` uses it with `projectors=1` (or more); `orders project` runs a `ProjectorPool` on
`open_redis` alone; `orders rebuild` uses `open_redis` and `projections.rebuild.rebuild`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from eventstore.port import StoreWithGroups
from projections.embedded_redis import start_embedded_redis
from projections.feed import ChangeFeed
from projections.pool import ProjectorPool
from projections.pool_waits import TimedBlockingConnectionPool
from projections.queries import OrderQueries
from projections.redis_store import RedisViewStore
from projections.redis_url import DEFAULT_REDIS_TIMEOUT, client_for_url
from projections.runner import ProjectorRunner, RunnerSettings
from projections.views import ProjectionStatus

logger = logging.getLogger(__name__)


POOL_SIZE = 64
"""Connections to Redis per process for requests. Requests queue for one (up to POOL_TIMEOUT)
rather than open more, so a burst cannot exhaust Redis or fail other callers at once; live
subscribers share the feed's single pub/sub connection and hold none."""
POOL_TIMEOUT = 5.0
"""How long a request waits for a free connection before it answers UNAVAILABLE (retryable;
`RedisBusy`, not an outage)."""
POOL_SHARE = POOL_SIZE // 4
"""Connections one caller (`redis_pool.pool_user`) may hold at once: however many reads it
sends together, three quarters of the pool stay for the others."""
INTERNAL_POOL_SIZE = 8
"""Connections of the service's own work (the projector, the live feed, health checks), apart
from the requests' pool: however busy the requests keep theirs, the views keep being projected
and a full request pool never looks like a Redis outage to them."""
SOCKET_TIMEOUT = 5.0
"""How long the service's own work (projector, feed) waits for one Redis reply."""


def redis_client(
    *,
    url: str | None = None,
    unix_socket: Path | None = None,
    max_connections: int = POOL_SIZE,
    per_user: int | None = None,
    socket_timeout: float = SOCKET_TIMEOUT,
) -> Redis:
    """A client on a bounded, blocking connection pool (each `pool_user` held to `per_user`
    connections at once), with a short retry: a dropped connection is retried once at once (a
    restarted server), a Redis that is really down fails the command in well under a second,
    and the caller answers UNAVAILABLE. A reply that takes longer than `socket_timeout` fails
    the command and is not retried: a stalled server would only stall the retry too."""
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "per_user": per_user,
        "timeout": POOL_TIMEOUT,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": min(1.0, socket_timeout),
        "retry": Retry(
            ExponentialBackoff(cap=0.1, base=0.02),
            retries=2,
            supported_errors=(RedisConnectionError,),
        ),
    }
    if url is not None:
        return client_for_url(url, options, pool_class=TimedBlockingConnectionPool)
    pool = TimedBlockingConnectionPool(
        connection_class=UnixDomainSocketConnection, path=str(unix_socket), **options
    )
    return Redis.from_pool(pool)


@contextlib.asynccontextmanager
async def open_redis_clients(
    redis_url: str | None,
    data_dir: Path | str,
    pools: tuple[tuple[int, int | None, float], ...] = ((POOL_SIZE, None, SOCKET_TIMEOUT),),
) -> AsyncIterator[list[Redis]]:
    """One Redis client per (pool size, share per user, reply timeout) in `pools`, on one
    server: REDIS_URL's, else the embedded one under DATA_DIR (started and supervised, or
    joined when another process already serves it there; stopped only if we started it)."""
    server = None if redis_url else await start_embedded_redis(data_dir)
    clients = [
        redis_client(
            url=redis_url,
            unix_socket=None if server is None else server.socket_path,
            max_connections=size,
            per_user=per_user,
            socket_timeout=timeout,
        )
        for size, per_user, timeout in pools
    ]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()
        if server is not None:
            await server.stop()


@contextlib.asynccontextmanager
async def open_redis(redis_url: str | None, data_dir: Path | str) -> AsyncIterator[Redis]:
    """A Redis client: REDIS_URL's server, else the embedded one (see `open_redis_clients`)."""
    async with open_redis_clients(redis_url, data_dir) as (client,):
        yield client


@dataclass(slots=True, kw_only=True)
class ReadSide:
    """What the API reads through: queries (with live updates) and the local projector workers.
    `redis` is the service's own client (projector, feed, health), apart from the queries'."""

    redis: Redis
    views: RedisViewStore
    feed: ChangeFeed
    queries: OrderQueries
    runners: list[ProjectorRunner]

    async def statuses(self) -> list[ProjectionStatus]:
        """The `projections` query: every projection as its workers (here or elsewhere) last
        recorded it."""
        return await self.queries.projection_statuses()


@contextlib.asynccontextmanager
async def open_read_side(
    store: StoreWithGroups,
    *,
    redis_url: str | None,
    data_dir: Path | str,
    projectors: int = 1,
    prefix: str = "orders",
    settings: RunnerSettings | None = None,
    redis_timeout: float = DEFAULT_REDIS_TIMEOUT,
) -> AsyncIterator[ReadSide]:
    """Open Redis, start the feed and `projectors` workers (0: none, e.g. when `orders project`
    runs them elsewhere); stop everything on exit. Requests' Redis replies are awaited for
    `redis_timeout` (REDIS_TIMEOUT) at most."""
    pools = (
        (POOL_SIZE, POOL_SHARE, redis_timeout),
        (INTERNAL_POOL_SIZE, None, SOCKET_TIMEOUT),
    )
    async with open_redis_clients(redis_url, data_dir, pools) as (requests, redis):
        views = RedisViewStore(redis, prefix=prefix)
        feed = ChangeFeed(redis, prefix=prefix)
        queries = OrderQueries(requests, prefix=prefix, feed=feed)
        pool = ProjectorPool(store, views, workers=projectors, settings=settings)
        await feed.start()
        pool.start()
        try:
            yield ReadSide(
                redis=redis, views=views, feed=feed, queries=queries, runners=pool.runners
            )
        finally:
            await pool.stop()
            await feed.stop()
