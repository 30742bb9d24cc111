"""REDIS_URL as a client: one server, a Sentinel-watched master, or a Redis Cluster.

    redis://host:6379/0, rediss://..., unix:///path/redis.sock     one server
    redis+sentinel://[:password@]h1:26379,h2:26379/SERVICE[/db]    the master Sentinel names
    redis+cluster://[:password@]h1:7000,h2:7001                    a Redis Cluster (seed nodes)

Every kind answers the commands the read side sends, so the rest of the code holds a `Redis`:
- Sentinel: the client asks the sentinels for the master on each new connection and drops its
  connections when one answers READONLY (the old master came back as a replica), so after a
  failover the next commands reach the new master; the ones in flight fail and are answered
  UNAVAILABLE.
- Cluster: every key of a projection shares one hash tag (`projections.keys`), so the scripts,
  the transactions and the pub/sub channels all route to the one node serving that slot.
"""

from __future__ import annotations

from typing import Any, Final, cast
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

DEFAULT_REDIS_TIMEOUT: Final = 1.0
"""How long a request waits for one Redis reply (REDIS_TIMEOUT's default): a stalled Redis is
answered UNAVAILABLE within it. Here, beside the URL, so the settings read it without loading the
read side."""

SENTINEL_SCHEME: Final = "redis+sentinel"
CLUSTER_SCHEME: Final = "redis+cluster"
SCHEMES: Final = (
    "redis://",
    "rediss://",
    "unix://",
    f"{SENTINEL_SCHEME}://",
    f"{CLUSTER_SCHEME}://",
)
"""The REDIS_URL schemes this module turns into a client."""

SENTINEL_PORT: Final = 26379
CLUSTER_PORT: Final = 6379


class RedisUrlError(ValueError):
    """A REDIS_URL this module cannot build a client from; the message says what is wrong."""


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    """`h1:p1,h2:p2` (after any credentials) as (host, port) pairs."""
    pairs: list[tuple[str, int]] = []
    for part in netloc.rpartition("@")[2].split(","):
        host, _, port = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "")
        if not host:
            raise RedisUrlError(f"REDIS_URL names a node without a host: {part!r}")
        try:
            pairs.append((host, int(port) if port else default_port))
        except ValueError:
            raise RedisUrlError(f"REDIS_URL names a port that is not a number: {part!r}") from None
    return pairs


def _credentials(netloc: str) -> dict[str, Any]:
    """`user:password@` as client options (none when the URL has no `@`)."""
    if "@" not in netloc:
        return {}
    user, _, password = netloc.rpartition("@")[0].partition(":")
    found: dict[str, Any] = {"username": unquote(user), "password": unquote(password)}
    return {name: value for name, value in found.items() if value}


def _service(path: str) -> tuple[str, int]:
    """A Sentinel URL's path: the master's service name and the database number."""
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise RedisUrlError(
            "REDIS_URL redis+sentinel:// needs the master's service name as its path, "
            "e.g. redis+sentinel://h1:26379,h2:26379/mymaster"
        )
    if db and not db.isdigit():
        raise RedisUrlError(f"REDIS_URL names a database that is not a number: {db!r}")
    return service, int(db or 0)


def check_url(url: str) -> None:
    """Raise `RedisUrlError` when `url` (of one of `SCHEMES`) cannot name a Sentinel master or a
    cluster: checked with the other settings, before anything starts."""
    parts = urlsplit(url)
    if parts.scheme == SENTINEL_SCHEME:
        _service(parts.path)
        _hosts(parts.netloc, SENTINEL_PORT)
    elif parts.scheme == CLUSTER_SCHEME:
        _hosts(parts.netloc, CLUSTER_PORT)


POOL_ONLY: Final = ("timeout", "per_user")
"""Options of the blocking pool (a wait for a free connection, a caller's fair share) that the
Sentinel and cluster pools of redis-py do not take: they open connections up to
`max_connections` and fail beyond it rather than queue."""


def client_for_url(
    url: str,
    options: dict[str, Any],
    *,
    pool_class: type[BlockingConnectionPool] = BlockingConnectionPool,
) -> Redis:
    """A client for `url` with `options` (`max_connections`, socket timeouts, `retry`, and the
    `POOL_ONLY` ones): a `pool_class` pool for one server; redis-py's own pools, without the
    `POOL_ONLY` options, for a Sentinel master (its pool asks the sentinels for the master) and
    for a cluster (a pool per node)."""
    parts = urlsplit(url)
    shared = {key: value for key, value in options.items() if key not in POOL_ONLY}
    if parts.scheme == SENTINEL_SCHEME:
        return _sentinel_client(parts.netloc, parts.path, shared)
    if parts.scheme == CLUSTER_SCHEME:
        return _cluster_client(parts.netloc, shared)
    return Redis.from_pool(pool_class.from_url(url, **options))


def _sentinel_client(netloc: str, path: str, options: dict[str, Any]) -> Redis:
    service, db = _service(path)
    credentials = _credentials(netloc)
    connection: dict[str, Any] = {
        key: options[key]
        for key in ("socket_timeout", "socket_connect_timeout", "retry")
        if key in options
    }
    # The sentinels are asked with the data's credentials too: the usual set-up shares them.
    sentinel = Sentinel(
        _hosts(netloc, SENTINEL_PORT), sentinel_kwargs={**connection, **credentials}
    )
    pool_options = {key: value for key, value in options.items() if key != "max_connections"}
    master = sentinel.master_for(
        service,
        redis_class=Redis,
        db=db,
        max_connections=options.get("max_connections"),
        **credentials,
        **pool_options,
    )
    return cast(Redis, master)


def _cluster_client(netloc: str, options: dict[str, Any]) -> Redis:
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in _hosts(netloc, CLUSTER_PORT)],
        **_credentials(netloc),
        **options,
    )
    # The read side sends only what a cluster routes by key (scripts with KEYS, single-slot
    # transactions, pattern subscriptions on the projection's tag), through the same methods.
    return cast(Redis, cluster)
