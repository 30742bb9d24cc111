"""Strawberry's two GraphQL websocket protocols with a handshake deadline and token expiry.

A connection is authenticated once, by `connection_init`, so the token's `exp` must be enforced
on the open socket: once it passes, new operations are refused and the connection is closed with
4403 ("Token expired"); a client reconnects with a fresh token. graphql-transport-ws closes a
connection that sends no `connection_init` in time (strawberry's own timer, 4408); the legacy
graphql-ws protocol has no such rule, so the same deadline and code are added to it here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage

from api.context import AppContext
from metrics.instruments import WS_CONNECTIONS

logger = logging.getLogger(__name__)

TOKEN_EXPIRED = 4403
"""Close code when the connection's token expires (the code graphql-transport-ws uses for a
refused connection_init, so clients treat it as "authenticate again")."""

INIT_TIMEOUT = 4408
"""Close code when no connection_init arrived in time (graphql-transport-ws's own)."""


def _seconds_left(context: AppContext) -> float | None:
    """Seconds until the connection's token expires (None before authentication)."""
    principal = context.principal
    if principal is None:
        return None
    return principal.expires_at - time.time()


class _Expiry:
    """Closes a websocket when its token expires; `expired` for refusing operations before."""

    def __init__(self, context: AppContext, close: Any) -> None:
        self._context = context
        self._close = close
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        left = _seconds_left(self._context)
        if left is not None and self._task is None:
            self._task = asyncio.create_task(self._close_at_expiry(left))

    @property
    def expired(self) -> bool:
        left = _seconds_left(self._context)
        return left is not None and left <= 0

    async def _close_at_expiry(self, left: float) -> None:
        await asyncio.sleep(max(left, 0.0))
        await self.close_expired()

    async def close_expired(self) -> None:
        logger.debug("event=ws_token_expired sub=%s", getattr(self._context.principal, "sub", None))
        with contextlib.suppress(Exception):  # the client may be gone already
            await self._close(code=TOKEN_EXPIRED, reason="Token expired")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class TransportWSHandler(BaseGraphQLTransportWSHandler[AppContext, None]):
    """graphql-transport-ws, closed with 4403 when the token expires."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._expiry = _Expiry(self.context, self.websocket.close)

    async def handle(self) -> None:
        """Serve the connection, counted in `orders_ws_connections` while open."""
        with WS_CONNECTIONS.track_inprogress():
            await super().handle()

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        """Authenticate, then watch the token's expiry."""
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self._expiry.start()

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """No new operation on an expired token (the timer may not have fired yet)."""
        if self.connection_acknowledged and self._expiry.expired:
            await self._expiry.close_expired()
            return
        await super().handle_subscribe(message)

    async def shutdown(self) -> None:
        """Stop the expiry timer with the connection."""
        await self._expiry.stop()
        await super().shutdown()


class LegacyWSHandler(BaseGraphQLWSHandler[AppContext, None]):
    """graphql-ws (legacy), with graphql-transport-ws's init deadline (4408) and closed with
    4403 when the token expires."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._expiry = _Expiry(self.context, self.websocket.close)
        self._init_received = False

    async def handle(self) -> None:
        """Serve the connection (counted in `orders_ws_connections` while open); close it if
        connection_init does not come in time."""
        deadline = asyncio.create_task(self._close_unless_initialised())
        try:
            with WS_CONNECTIONS.track_inprogress():
                await super().handle()
        finally:
            deadline.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deadline
            await self._expiry.stop()

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self._init_received:
            logger.debug("event=ws_init_timeout protocol=graphql-ws")
            with contextlib.suppress(Exception):
                await self.websocket.close(
                    code=INIT_TIMEOUT, reason="Connection initialisation timeout"
                )

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        """Authenticate, then watch the token's expiry."""
        self._init_received = True
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self._expiry.start()

    async def handle_start(self, message: StartMessage) -> None:
        """No new operation on an expired token (the timer may not have fired yet)."""
        if self.connection_acknowledged and self._expiry.expired:
            await self._expiry.close_expired()
            return
        await super().handle_start(message)
