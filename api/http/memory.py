"""Giving memory back after websocket subscribers leave.

Two things keep a server's memory up after sockets and subscriptions close, although nothing
refers to their objects any more:

- reference cycles. A cancelled operation leaves its `CancelledError` with a traceback whose
  frames hold the operation's locals (its variables, execution context, results), and the
  exception is reachable from those frames again. Only the cyclic collector frees them, and a
  serving process runs it rarely (`api.http.gc_tuning`): thousands of closed subscriptions, with
  their variables, waited for a full collection that came every few million allocations;
- the C allocator. Freed blocks of more than 512 bytes (variables, messages, dict tables) go back
  to glibc's heap, which returns its top to the system only when that top is free and keeps
  the rest for reuse: a heap fragmented by long-lived objects keeps its peak size.

`MemoryReclaimer` runs a full collection and then `malloc_trim(0)` shortly after subscribers
leave, at most once every few seconds however many leave, so a burst of closes costs one pass.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

QUIET_SECONDS = 1.0
"""Wait this long after a release before reclaiming: the closes of a burst are reclaimed once."""
MIN_INTERVAL_SECONDS = 5.0
"""Reclaim at most once per this: a full collection and a trim each hold the event loop for a
few milliseconds, proportional to the live heap."""


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`, which returns free heap pages to the system; None elsewhere.
    Looked up among the symbols the interpreter already has loaded (its C library's)."""
    try:
        loaded = ctypes.CDLL(None)
    except OSError:
        return None
    trim = getattr(loaded, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class MemoryReclaimer:
    """Collects cycles and trims the C heap shortly after something large was let go."""

    def __init__(
        self,
        *,
        quiet: float = QUIET_SECONDS,
        min_interval: float = MIN_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._quiet = quiet
        self._min_interval = min_interval
        self._clock = clock
        self._last = -min_interval
        self._pending: asyncio.TimerHandle | None = None
        self._trim = _malloc_trim()
        self.passes = 0
        """Reclaims run so far (for tests)."""

    def released(self) -> None:
        """Something was let go (a socket or a subscription closed): reclaim soon."""
        if self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(self._quiet, self._last + self._min_interval - self._clock())
        self._pending = loop.call_later(delay, self.reclaim)

    def reclaim(self) -> None:
        """Collect every generation, then hand the heap's free pages back."""
        self._pending = None
        started = self._clock()
        collected = gc.collect()
        collected_at = self._clock()
        if self._trim is not None:
            self._trim()
        self._last = self._clock()
        self.passes += 1
        logger.debug(
            "event=memory_reclaimed objects=%d collect_ms=%.1f trim_ms=%.1f",
            collected,
            (collected_at - started) * 1000,
            (self._last - collected_at) * 1000,
        )
