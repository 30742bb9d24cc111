"""Live delivery: LISTEN/NOTIFY wakes catch-up subscribers of every process; a slow fallback poll
covers a lost notification (a dropped listener connection, a notification queue overflow).

Subscribers register a waiter before they read (see `subscriptions`), so a notification that
arrives between their read and their wait still wakes them. A lost notification therefore only
delays delivery until the next fallback tick: the subscriber re-reads from its own position, and
the log, not the notification, says what is new.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from eventstore.notify import HeadNotifier
from eventstore.outage_log import OUTAGES
from eventstore.postgres.schema import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

FALLBACK_POLL = 2.0
"""Seconds between wake-ups when no notification came: the worst delay a lost one can cause."""


class Listener:
    """One LISTEN connection per store, feeding a `HeadNotifier`."""

    def __init__(
        self,
        dsn: str,
        notifier: HeadNotifier,
        *,
        listen: bool = True,
        fallback_poll: float = FALLBACK_POLL,
        origin: str = "",
    ) -> None:
        self._dsn = dsn
        self._origin = origin
        self._notifier = notifier
        self._listen = listen
        self._fallback_poll = fallback_poll
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None
        self.notifications = 0

    async def start(self) -> None:
        """Connect the listener (when enabled) and start the fallback ticks."""
        if self._listen:
            await self._connect()
        self._task = asyncio.create_task(self._tick(), name="postgres-listener")

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except BaseException:
            conn.terminate()  # ended before it listened (a restart): never left open
            raise
        self._conn = conn

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.notifications += 1
        if payload and payload == self._origin:
            return  # our own commit: its subscribers were woken when it committed
        self._notifier.notify()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._fallback_poll)
            if self._listen and (self._conn is None or self._conn.is_closed()):
                try:
                    await self._connect()
                    logger.info("event=pg_listener_reconnected")
                except (
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                    asyncpg.InternalClientError,
                ) as error:
                    OUTAGES.failed("eventStore", error)  # one line per outage
            self._notifier.notify()

    @property
    def server_pid(self) -> int | None:
        """The listening connection's backend pid (None while disconnected)."""
        if self._conn is None or self._conn.is_closed():
            return None
        pid: int = self._conn.get_server_pid()
        return pid

    async def close(self) -> None:
        """Stop ticking and close the listener connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None and not self._conn.is_closed():
            try:
                await self._conn.close()
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
            ):
                self._conn.terminate()  # the server ended it meanwhile: closed all the same
        self._conn = None
