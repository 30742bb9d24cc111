"""A stop an orchestrator can see coming: after SIGTERM, `/readyz` answers 503 for
SHUTDOWN_GRACE seconds while every request is still served (load balancers take the instance
out of rotation meanwhile), then uvicorn's own shutdown drains: it stops accepting, lets the
requests in flight finish (at most DRAIN_TIMEOUT seconds) and closes websockets with 1012
(service restart), so clients reconnect elsewhere.

The grace is for SIGTERM, what orchestrators send. SIGINT (Ctrl-C) skips it and drains at once;
a second SIGTERM or a SIGINT during the grace ends it at once, and a SIGINT during the drain
stops waiting for connections (uvicorn's own rule).
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT = 10
"""Seconds the drain waits for requests in flight before cancelling them."""


class Drain:
    """Whether the process is on its way out (readiness says 503 from then on)."""

    def __init__(self) -> None:
        self.draining = False


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a grace period before its shutdown.

    Signal handlers only flip flags (they may run between any two bytecodes of the loop); the
    server's own tick, ten times a second, logs and ends the grace.
    """

    def __init__(self, config: uvicorn.Config, drain: Drain, grace: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.grace = grace
        self._grace_ends: float | None = None
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """The first SIGTERM starts the grace; any other signal is uvicorn's."""
        graceful = sig == signal.SIGTERM and self.grace > 0
        if not graceful or self._grace_ends is not None or self.should_exit:
            self.drain.draining = True
            super().handle_exit(sig, frame)
            return
        self._captured_signals.append(sig)
        self.drain.draining = True
        self._grace_ends = time.monotonic() + self.grace

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's tick, ending the grace when its time is up."""
        if self.drain.draining and not self._announced:
            self._announced = True
            logger.info(
                "event=draining grace_s=%.1f signal=%s",
                self.grace if self._grace_ends is not None else 0.0,
                signal.Signals(self._captured_signals[0]).name if self._captured_signals else "",
            )
        if self._grace_ends is not None and time.monotonic() >= self._grace_ends:
            self.should_exit = True
        return await super().on_tick(counter)
