"""Strawberry's two GraphQL websocket protocols with a handshake deadline, token expiry and the
caller's budgets.

A connection is authenticated once, by `connection_init`, so the token's `exp` must be enforced
on the open socket: once it passes, new operations are refused and the connection is closed with
4403 ("Token expired"); a client reconnects with a fresh token. graphql-transport-ws closes a
connection that sends no `connection_init` in time (strawberry's own timer, 4408); the legacy
graphql-ws protocol has no such rule, so the same deadline and code are added to it here.

Budgets (`_SocketBudget`): until its `connection_init` is acknowledged a socket counts as its
address's (`api.http.protocol`); then as its identity's, which may hold so many sockets (one
more is closed with 1013, try again later, instead of acknowledged) and run so many operations
on each socket and over all of them (one more is answered, for that operation only, with a
RATE_LIMITED error; the socket stays open). An operation's place is given back when its task
ends: completed, stopped, or the socket closed.
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

from api.graphql.context import AppContext
from api.http.budgets import CALLER_STATE, Caller, IdentityBudgets, RateLimited
from api.http.limits import BudgetLimits
from api.http.protocol import WEBSOCKET_LEASE, WebSocketLease
from metrics.instruments import WS_CONNECTIONS
from projections.redis_pool import pool_user

logger = logging.getLogger(__name__)

TOKEN_EXPIRED = 4403
"""Close code when the connection's token expires (the code graphql-transport-ws uses for a
refused connection_init, so clients treat it as "authenticate again")."""

INIT_TIMEOUT = 4408
"""Close code when no connection_init arrived in time (graphql-transport-ws's own)."""

TRY_AGAIN_LATER = 1013
"""Close code (RFC 6455's "Try Again Later") for a socket over its identity's budget."""


def _seconds_left(context: AppContext) -> float | None:
    """Seconds until the connection's token expires (None before authentication)."""
    principal = context.principal
    if principal is None:
        return None
    return principal.expires_at - time.time()


class _Expiry:
    """Closes a websocket when its token expires; `expired` for refusing operations before.

    The wait is a timer, not a task: a sleeping task and its coroutine cost every open socket
    about 2 KiB for the token's lifetime; the closing task is made only when the time comes."""

    __slots__ = ("_close", "_context", "_task", "_timer")

    def __init__(self, context: AppContext, close: Any) -> None:
        self._context = context
        self._close = close
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        left = _seconds_left(self._context)
        if left is not None and self._timer is None and self._task is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(left, 0.0), self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._task = asyncio.create_task(self.close_expired())

    @property
    def expired(self) -> bool:
        left = _seconds_left(self._context)
        return left is not None and left <= 0

    async def close_expired(self) -> None:
        logger.debug("event=ws_token_expired sub=%s", getattr(self._context.principal, "sub", None))
        with contextlib.suppress(Exception):  # the client may be gone already
            await self._close(code=TOKEN_EXPIRED, reason="Token expired")

    async def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _SocketBudget:
    """One websocket's places in its caller's budgets: the socket itself once acknowledged, and
    each operation running on it."""

    def __init__(self, context: AppContext, view: object) -> None:
        self._context = context
        budgets = getattr(view, "budgets", None)
        self._budgets = (
            budgets if isinstance(budgets, IdentityBudgets) else IdentityBudgets(BudgetLimits())
        )
        self._per_socket = self._budgets.per_socket()
        self.caller: Caller | None = None
        self._holds_socket = False

    def _lease(self) -> WebSocketLease | None:
        lease = self._context.request.scope.get(WEBSOCKET_LEASE)
        return lease if isinstance(lease, WebSocketLease) else None

    def admit(self) -> bool:
        """At `connection_init`, authenticated: the socket counts as its identity's now; False
        when that identity holds all the sockets it may (nothing is held then)."""
        request = self._context.request
        address = request.client.host if request.client else None
        caller = Caller.of(self._context.principal, address, self._budgets)
        lease = self._lease()
        if lease is not None:
            lease.identify()
        if caller.budgeted:
            if not self._budgets.websockets.try_acquire(caller.identity):
                return False
            self._holds_socket = True
        self.caller = caller
        setattr(request.state, CALLER_STATE, caller)
        # Set in the socket's reader task: the operations it starts from now on inherit it, so
        # their Redis reads count against the caller's share of the pool.
        pool_user.set(caller.identity)
        return True

    def start_operation(self) -> RateLimited | None:
        """Take an operation's places (on this socket, and for a budgeted identity over all its
        sockets), or the error refusing it (nothing held then)."""
        caller = self.caller
        if caller is None:
            return None  # not acknowledged: strawberry refuses the operation itself
        if not self._per_socket.try_acquire(caller.identity):
            return RateLimited("subscriptions on this socket", 1.0)
        if caller.budgeted and not self._budgets.subscriptions.try_acquire(caller.identity):
            self._per_socket.release(caller.identity)
            return RateLimited("subscriptions", 1.0)
        return None

    def end_operation(self) -> None:
        """An operation `start_operation` let in has ended."""
        caller = self.caller
        if caller is None:
            return
        self._per_socket.release(caller.identity)
        if caller.budgeted:
            self._budgets.subscriptions.release(caller.identity)

    def release_on_end(self, task: asyncio.Task[Any] | None) -> None:
        """Give the operation's places back when `task` ends (now, if there is none)."""
        if task is None:
            self.end_operation()
        else:
            task.add_done_callback(self._operation_done)

    def _operation_done(self, _: asyncio.Task[Any]) -> None:
        self.end_operation()

    def close(self) -> None:
        """The socket is closing: give back its place among the identity's sockets."""
        if self._holds_socket and self.caller is not None:
            self._holds_socket = False
            self._budgets.websockets.release(self.caller.identity)


REFUSED_SOCKET_REASON = "Too many connections for this caller; retry later."


class TransportWSHandler(BaseGraphQLTransportWSHandler[AppContext, None]):
    """graphql-transport-ws, closed with 4403 when the token expires, held to the caller's
    budgets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._expiry = _Expiry(self.context, self.websocket.close)
        self._budget = _SocketBudget(self.context, self.view)
        self._refused = False

    async def handle(self) -> None:
        """Serve the connection, counted in `orders_ws_connections` while open."""
        with WS_CONNECTIONS.track_inprogress():
            await super().handle()

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        """Authenticate and take the socket's place among its identity's, then watch the
        token's expiry."""
        await super().handle_connection_init(message)
        if self._refused:
            self.connection_acknowledged = False
        if self.connection_acknowledged:
            self._expiry.start()
            # Cancelled by strawberry above: left referenced, the finished task (and what it
            # holds) would stay for the connection's lifetime.
            self.connection_init_timeout_task = None

    async def send_message(self, message: Any) -> None:
        """Send; the acknowledgement only when the identity may hold one more socket (else the
        socket is closed with 1013 instead)."""
        if message.get("type") == "connection_ack" and not self._budget.admit():
            self._refused = True
            await self.websocket.close(code=TRY_AGAIN_LATER, reason=REFUSED_SOCKET_REASON)
            return
        await super().send_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """No new operation on an expired token (the timer may not have fired yet), nor past
        the caller's operation budgets (an error for that operation)."""
        if self.connection_acknowledged and self._expiry.expired:
            await self._expiry.close_expired()
            return
        operation_id = message.get("id")
        if not self.connection_acknowledged or operation_id in self.operations:
            await super().handle_subscribe(message)  # refused by strawberry
            return
        refused = self._budget.start_operation()
        if refused is not None:
            await self.send_message(
                {"id": operation_id, "type": "error", "payload": [refused.formatted]}
            )
            return
        try:
            await super().handle_subscribe(message)
        finally:
            operation = self.operations.get(operation_id) if isinstance(operation_id, str) else None
            self._budget.release_on_end(operation.task if operation is not None else None)

    async def shutdown(self) -> None:
        """Stop the expiry timer with the connection, and give its places back."""
        await self._expiry.stop()
        await super().shutdown()
        self._budget.close()


class LegacyWSHandler(BaseGraphQLWSHandler[AppContext, None]):
    """graphql-ws (legacy), with graphql-transport-ws's init deadline (4408) and closed with
    4403 when the token expires."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._expiry = _Expiry(self.context, self.websocket.close)
        self._init_received = False
        self._budget = _SocketBudget(self.context, self.view)
        self._refused = False

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
            self._budget.close()

    async def send_message(self, message: Any) -> None:
        """Send; the acknowledgement only when the identity may hold one more socket (else the
        socket is closed with 1013 instead)."""
        if self._refused:
            return
        if message.get("type") == "connection_ack" and not self._budget.admit():
            self._refused = True
            await self.websocket.close(code=TRY_AGAIN_LATER, reason=REFUSED_SOCKET_REASON)
            return
        await super().send_message(message)

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
        if self._refused:
            self.connection_acknowledged = False
            if self.keep_alive_task is not None:
                self.keep_alive_task.cancel()
        if self.connection_acknowledged:
            self._expiry.start()

    async def handle_start(self, message: StartMessage) -> None:
        """No new operation on an expired token (the timer may not have fired yet), nor past
        the caller's operation budgets (an error for that operation)."""
        if self.connection_acknowledged and self._expiry.expired:
            await self._expiry.close_expired()
            return
        if not self.connection_acknowledged:
            await super().handle_start(message)  # refused by strawberry
            return
        operation_id = message.get("id")
        refused = self._budget.start_operation()
        if refused is not None:
            await self.send_message(
                {"type": "error", "id": operation_id, "payload": refused.formatted}
            )
            return
        before = self.tasks.get(operation_id) if isinstance(operation_id, str) else None
        try:
            await super().handle_start(message)
        finally:
            task = self.tasks.get(operation_id) if isinstance(operation_id, str) else None
            self._budget.release_on_end(task if task is not before else None)
