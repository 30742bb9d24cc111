"""What `orders serve` gives around the application that an application started by uvicorn's own
command (`uvicorn --factory api.wiring.app:app_from_env`) can still install from inside: the grace
after SIGTERM (readiness 503 while requests are served, `api.http.shutdown`), METRICS_PORT, and the
tracer's flush at exit.

What only `orders serve` gives (uvicorn's protocols: the read deadlines, the connection caps, the
websocket frame limit) lives in the server, not the application; the README says which uvicorn
options come closest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import FrameType
from typing import Any

from api.http.shutdown import Drain
from metrics.exposition import serving_metrics

logger = logging.getLogger(__name__)

_Handler = Callable[[int, FrameType | None], Any] | int | None


class SigtermGrace:
    """Puts itself before the server's SIGTERM handler: the first SIGTERM flips `drain` (readiness
    says 503) and hands the signal on `grace` seconds later; a second one, at once. The handler
    only flips flags and wakes the loop (it may run between any two bytecodes of it); a task on
    the loop ends the grace."""

    def __init__(self, drain: Drain, grace: float) -> None:
        self.drain = drain
        self.grace = grace
        self._previous: _Handler = None
        self._signalled = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handed_on = False

    def install(self) -> bool:
        """Chain onto the current SIGTERM handler; False where signals cannot be caught (a
        thread other than the main one) or when there is no grace to give."""
        if self.grace <= 0 or threading.current_thread() is not threading.main_thread():
            return False
        self._loop = asyncio.get_running_loop()
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return True

    def uninstall(self) -> None:
        """Give SIGTERM back to the handler it was taken from."""
        if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            signal.signal(signal.SIGTERM, self._previous)

    def _on_sigterm(self, sig: int, frame: FrameType | None) -> None:
        self.drain.draining = True
        if not self._signalled.is_set() and self._loop is not None:
            self._loop.call_soon_threadsafe(self._signalled.set)
            return
        self._hand_on(sig, frame)  # a second SIGTERM: no more grace

    def _hand_on(self, sig: int, frame: FrameType | None) -> None:
        if self._handed_on:
            return
        self._handed_on = True
        if callable(self._previous):
            self._previous(sig, frame)
        else:  # nobody handled it before us: end as SIGTERM ends a process
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    async def watch(self) -> None:
        """Log the drain once it begins and hand the signal on when the grace is over."""
        await self._signalled.wait()
        logger.info("event=draining grace_s=%.1f signal=SIGTERM", self.grace)
        await asyncio.sleep(self.grace)
        self._hand_on(signal.SIGTERM, None)


@contextlib.contextmanager
def metrics_port_if_free(host: str, port: int | None) -> Iterator[None]:
    """METRICS_PORT served by this process, unless another worker of the same server (uvicorn
    --workers) took it first: any one worker's page has every worker's sum."""
    with contextlib.ExitStack() as serving:
        try:
            serving.enter_context(serving_metrics(host, port))
        except OSError as error:
            logger.info("event=metrics_port_taken port=%s error=%r", port, error)
        yield


@contextlib.asynccontextmanager
async def factory_extras(
    drain: Drain, grace: float, host: str, metrics_port: int | None
) -> AsyncIterator[None]:
    """The grace after SIGTERM and METRICS_PORT, for the application's lifespan."""
    sigterm = SigtermGrace(drain, grace)
    watcher = asyncio.create_task(sigterm.watch()) if sigterm.install() else None
    try:
        with metrics_port_if_free(host, metrics_port):
            yield
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            sigterm.uninstall()
