"""Smaller stand-ins for the asyncio objects uvicorn's websocket protocol keeps per connection.

Each open websocket holds an `asyncio.Queue` of received messages (three deques: about 2 KiB
while empty) and an `asyncio.Event` for its write buffer (a deque: about 0.7 KiB). At 10,000
subscribers that is some 27 MiB for queues that hold at most a message or two (uvicorn stops
reading the socket until the app takes each one) and an event nobody waits on unless the client
stops reading. These do the same with a few dozen bytes while idle: the same methods uvicorn
calls, nothing allocated until there is something to hold or someone to wake.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


def _wake(waiters: list[asyncio.Future[None]] | None) -> None:
    for waiter in waiters or ():
        if not waiter.done():
            waiter.set_result(None)


async def _wait(waiters: list[asyncio.Future[None]]) -> None:
    waiter = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    try:
        await waiter
    finally:
        waiters.remove(waiter)


class LeanQueue(Generic[T]):
    """An unbounded FIFO with `put_nowait`, `get` and `empty`, as uvicorn uses its queue. A
    getter cancelled after being woken leaves the item for the next `get` (nothing is lost)."""

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._waiters: list[asyncio.Future[None]] | None = None

    def put_nowait(self, item: T) -> None:
        """Add `item` and wake a getter."""
        self._items.append(item)
        _wake(self._waiters)

    async def get(self) -> T:
        """The oldest item, once there is one."""
        while not self._items:
            if self._waiters is None:
                self._waiters = []
            await _wait(self._waiters)
        return self._items.pop(0)

    def empty(self) -> bool:
        """Whether no item waits."""
        return not self._items

    def qsize(self) -> int:
        """Items waiting."""
        return len(self._items)


class LeanEvent:
    """A flag with `set`, `clear`, `is_set` and `wait`, as `asyncio.Event` has."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._set

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._set = True
        _wake(self._waiters)

    def clear(self) -> None:
        """Unset the flag."""
        self._set = False

    async def wait(self) -> None:
        """Return once the flag is set."""
        while not self._set:
            if self._waiters is None:
                self._waiters = []
            await _wait(self._waiters)
