"""The bounded Redis pool, timed: how long each command waited to get a connection
(`orders_redis_pool_wait_seconds`). Near zero while the pool has free connections; a rising
tail says the pool is the bottleneck (or Redis is slow to hand connections back)."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio.connection import AbstractConnection

from metrics.instruments import REDIS_POOL_WAIT
from projections.redis_pool import BusyAwarePool


class TimedBlockingConnectionPool(BusyAwarePool):
    """The requests' pool (`BusyAwarePool`: a blocking pool with each user's fair share) that
    observes each wait for a connection, the wait for the user's share included (a timed-out
    wait too: it is the longest)."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        """A connection from the pool, blocking until one is free (as the base class)."""
        started = time.perf_counter()
        try:
            connection: AbstractConnection = await super().get_connection(*args, **kwargs)
        finally:
            REDIS_POOL_WAIT.observe(time.perf_counter() - started)
        return connection
