"""The bounded Redis connection pool, and telling its load from an outage.

Requests wait for a free connection (up to a timeout) rather than open more, so a burst cannot
exhaust Redis. A wait that times out means the pool is busy, not that Redis is down: redis-py
says both with the same `ConnectionError`, so the pool here raises `RedisBusy` for a wait, and
only a refused, lost or silent server stays a `ConnectionError` (an outage).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError


class RedisBusy(RedisError):
    """Every connection of the pool stayed in use for the whole wait: load, not an outage.
    Retry shortly; never a reason to recover the views or to report Redis down."""


class BusyAwarePool(BlockingConnectionPool):
    """redis-py's blocking pool, raising `RedisBusy` when the wait for a connection times out."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        """A free connection, waiting up to the pool's timeout for one."""
        try:
            connection: AbstractConnection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except RedisConnectionError as error:
            if isinstance(error.__cause__, TimeoutError):
                raise RedisBusy(
                    f"no Redis connection free within {self.timeout} s "
                    f"({self.max_connections} in use)"
                ) from error
            raise
        return connection
