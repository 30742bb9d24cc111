"""The bounded Redis connection pool: telling its load from an outage, and sharing it fairly.

Requests wait for a free connection (up to a timeout) rather than open more, so a burst cannot
exhaust Redis. A wait that times out means the pool is busy, not that Redis is down: redis-py
says both with the same `ConnectionError`, so the pool here raises `RedisBusy` for a wait, and
only a refused, lost or silent server stays a `ConnectionError` (an outage).

Fair share: a caller that sends many reads at once (a query of thirty aliased pages, several
such queries) would take every connection and leave the others waiting until they time out. The
API names who is reading (`pool_user`, the caller's identity); each user holds at most
`per_user` connections at once and its further reads wait their turn behind its own, so other
users always find connections free.
"""

from __future__ import annotations

import asyncio
import collections
from contextvars import ContextVar
from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

pool_user: ContextVar[str | None] = ContextVar("redis_pool_user", default=None)
"""Who the current task reads for (set by the API per request and websocket); None: the
service's own work, not held to a share."""


class RedisBusy(RedisError):
    """Every connection the reader may use stayed in use for the whole wait: load, not an
    outage. Retry shortly; never a reason to recover the views or to report Redis down."""


class _Share:
    """At most `limit` connections per user at once; the user's further reads wait in order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, int] = {}
        self._waiting: dict[str, collections.deque[asyncio.Future[None]]] = {}

    async def acquire(self, user: str) -> None:
        """One of `user`'s places, waiting for it (cancel the wait to give up)."""
        if self._held.get(user, 0) < self.limit and not self._waiting.get(user):
            self._held[user] = self._held.get(user, 0) + 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(user, collections.deque()).append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release(user)  # handed a place as the wait ended: pass it on
            else:
                turn.cancel()
                self._forget_waiter(user, turn)
            raise

    def _forget_waiter(self, user: str, turn: asyncio.Future[None]) -> None:
        waiting = self._waiting.get(user)
        if waiting is not None:
            if turn in waiting:
                waiting.remove(turn)
            if not waiting:
                del self._waiting[user]

    def release(self, user: str) -> None:
        """Give back one of `user`'s places: to its next waiting read, else to the pool."""
        waiting = self._waiting.get(user)
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the place passes on; the count stays
                if not waiting:
                    del self._waiting[user]
                return
        self._waiting.pop(user, None)
        held = self._held.get(user, 0) - 1
        if held > 0:
            self._held[user] = held
        else:
            self._held.pop(user, None)

    @property
    def users(self) -> int:
        """Users holding or waiting for a place (idle ones are not kept)."""
        return len(self._held.keys() | self._waiting.keys())


class BusyAwarePool(BlockingConnectionPool):
    """redis-py's blocking pool, raising `RedisBusy` when the wait for a connection times out,
    and holding each `pool_user` to `per_user` connections at once (None: no share)."""

    def __init__(self, *args: Any, per_user: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.share = _Share(per_user) if per_user else None
        self._users: dict[int, str] = {}

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        """A free connection, waiting up to the pool's timeout for one (and for the user's
        share)."""
        user = pool_user.get() if self.share is not None else None
        if user is not None and self.share is not None:
            try:
                async with asyncio.timeout(self.timeout):
                    await self.share.acquire(user)
            except TimeoutError:
                raise RedisBusy(
                    f"no Redis connection of this reader's share ({self.share.limit}) free "
                    f"within {self.timeout} s"
                ) from None
        try:
            connection: AbstractConnection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except BaseException as error:
            if user is not None and self.share is not None:
                self.share.release(user)
            if isinstance(error, RedisConnectionError) and isinstance(
                error.__cause__, TimeoutError
            ):
                raise RedisBusy(
                    f"no Redis connection free within {self.timeout} s "
                    f"({self.max_connections} in use)"
                ) from error
            raise
        if user is not None:
            self._users[id(connection)] = user
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        """Return `connection` to the pool, and its place to its user's share."""
        user = self._users.pop(id(connection), None)
        try:
            await super().release(connection)
        finally:
            if user is not None and self.share is not None:
                self.share.release(user)
