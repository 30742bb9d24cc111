"""Wakes catch-up subscribers when the head of the log moves.

A subscriber registers a waiter *before* it reads, so a commit that lands between its read and its
wait still wakes it: nothing is missed between history and live.
"""

from __future__ import annotations

import asyncio
import logging
import threading

logger = logging.getLogger(__name__)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class HeadNotifier:
    """One-shot waiters, woken together after each commit. Safe to notify from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[asyncio.Future[None]] = set()

    def register(self) -> asyncio.Future[None]:
        """A future that completes at the next commit after this call."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiters.add(waiter)
        return waiter

    def discard(self, waiter: asyncio.Future[None]) -> None:
        """Forget a waiter that is no longer awaited."""
        with self._lock:
            self._waiters.discard(waiter)
        waiter.cancel()

    def notify(self) -> None:
        """Wake every registered waiter (called by the writer thread after a commit)."""
        with self._lock:
            waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            try:
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)
            except RuntimeError:
                # The waiter's loop is closed: its subscriber is gone with it.
                logger.debug("event=head_waiter_dropped reason=loop_closed")

    @property
    def waiting(self) -> int:
        """How many waiters are registered (for tests: a closed subscription leaves none)."""
        with self._lock:
            return len(self._waiters)
