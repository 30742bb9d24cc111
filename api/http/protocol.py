"""uvicorn's httptools protocol with the read timeouts and the connection caps it lacks, and its
websockets protocol answering the handshakes it refuses.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`), but it waits forever for a
request's headers or body (a client that opens a connection and sends nothing, or one byte at a
time, holds it), and its one cap (`limit_concurrency`) counts every connection together, so
whoever opens the most takes all. These protocols add a deadline for the request head, another
for the body, and `ConnectionCounts`: HTTP connections and websockets counted apart, each in all
and per client address (a connection says who it is only with its first request or its
`connection_init`, so until then it is counted by where it comes from). Past a cap, 503.

A websocket handshake with a header line over 8 KiB (the websockets library's line limit) is
refused by its parser with 431 before the ASGI app sees it, but uvicorn never sends that answer:
the client waits until it gives up. `AnsweringWebSocketProtocol` sends it at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from api.http.budgets import Budget, LimitedLog
from api.http.limits import ConnectionLimits
from api.http.logs import refusals
from api.http.ws_fanout import WEBSOCKET_PROTOCOL
from api.http.ws_lean import LeanEvent, LeanQueue

logger = logging.getLogger(__name__)


def _plain_response(status_line: bytes, message: bytes, *, retry_after: int | None = None) -> bytes:
    return b"".join(
        [
            status_line,
            b"" if retry_after is None else b"retry-after: %d\r\n" % retry_after,
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(message)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            message,
        ]
    )


REQUEST_TIMEOUT = _plain_response(b"HTTP/1.1 408 Request Timeout\r\n", b"Request timeout.")
SERVICE_UNAVAILABLE = _plain_response(
    b"HTTP/1.1 503 Service Unavailable\r\n", b"Too many connections; retry shortly.", retry_after=1
)


CLOSE_LINGER = 1.0
"""Seconds a connection answered and closed by the server itself (503 at once past the caps,
408 past a deadline) stays open, what the client still sends dropped, so the client reads the
answer rather than a reset."""

ALL = "*"
"""The one key of a global cap."""

WEBSOCKET_LEASE = "orders.websocket_lease"
"""The websocket scope's key for its `WebSocketLease` (the app identifies it at ack)."""


def _address(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unix" if peer is not None else "unknown"


class ConnectionCounts:
    """The open connections of one server process: HTTP connections in all and per client
    address, websockets in all and, until their `connection_init` is acknowledged, per address.
    Refusals per address are logged by `LimitedLog` (who, quietly); global ones by `refusals`."""

    def __init__(self, limits: ConnectionLimits, log: LimitedLog | None = None) -> None:
        log = log or LimitedLog()
        self.http = Budget("http_connections", limits.max_http_connections)
        self.http_per_address = Budget(
            "http_connections_per_address", limits.max_http_connections_per_address, log
        )
        self.websockets = Budget("websockets", limits.max_websockets)
        self.anonymous_websockets = Budget(
            "anonymous_websockets", limits.max_anonymous_websockets_per_address, log
        )

    def open_http(self, address: str) -> bool:
        """Count a new HTTP connection from `address`, or refuse it (nothing counted)."""
        if not self.http.try_acquire(ALL):
            return False
        if not self.http_per_address.try_acquire(f"address:{address}"):
            self.http.release(ALL)
            return False
        return True

    def close_http(self, address: str) -> None:
        """An HTTP connection `open_http` counted is gone (or became a websocket)."""
        self.http.release(ALL)
        self.http_per_address.release(f"address:{address}")

    def websocket_allowed(self, address: str) -> bool:
        """Whether one more websocket from `address` is within the caps (logs a refusal)."""
        if self.websockets.held(ALL) >= self.websockets.limit:
            return False
        key = f"address:{address}"
        if self.anonymous_websockets.held(key) >= self.anonymous_websockets.limit:
            self.anonymous_websockets.try_acquire(key)  # refused: tells the log who
            return False
        return True


class WebSocketLease:
    """The counts one websocket holds: its place among all websockets, and among its address's
    anonymous ones until `identify` (its `connection_init` acknowledged) gives that back."""

    def __init__(self, counts: ConnectionCounts, address: str) -> None:
        self._counts = counts
        self._key = f"address:{address}"
        self._global = counts.websockets.try_acquire(ALL)
        self._anonymous = counts.anonymous_websockets.try_acquire(self._key)

    def identify(self) -> None:
        """The websocket said who it is: it no longer counts as anonymous."""
        if self._anonymous:
            self._anonymous = False
            self._counts.anonymous_websockets.release(self._key)

    def close(self) -> None:
        """The websocket is gone: give back everything it held."""
        self.identify()
        if self._global:
            self._global = False
            self._counts.websockets.release(ALL)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One HTTP connection with deadlines for each request's head and body.

    The head deadline runs from the connection's start, and from the first byte of each later
    request on it (between requests, uvicorn's keep-alive timeout applies); the body deadline
    from the end of the head. Either one passing answers 408 (unless a response has begun)
    and closes the connection. A connection past the caps of `counts` is answered 503 at once
    and closed. `limits` and `counts` are set by `guarded_protocol`.
    """

    limits: ConnectionLimits = ConnectionLimits()
    counts: ConnectionCounts = ConnectionCounts(ConnectionLimits())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._counted_from: str | None = None
        self._refused = False
        self._lingering = False

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._timed_out, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        logger.debug("event=http_read_timeout part=%s client=%s", what, self.client)
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(REQUEST_TIMEOUT)
        # The application waiting for the body learns of the disconnect now, and its answer (if
        # it still gives one) goes nowhere.
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        # A lingering close: the answer and the end of our side now; what the client still
        # sends is read and dropped for CLOSE_LINGER, then the connection closes. Closed at
        # once, a byte the client was still trickling would be answered with a reset, which can
        # reach it before it has read the 408.
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(CLOSE_LINGER, self.transport.close)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection within the caps: its first request's head must arrive in time.
        Past them: 503 at once, closed once its head arrived or after CLOSE_LINGER."""
        address = _address(transport)
        if not self.counts.open_http(address):
            self._refused = True
            self.transport = transport
            refusals.refused("http")
            transport.write(SERVICE_UNAVAILABLE)
            self.loop.call_later(CLOSE_LINGER, transport.close)
            return
        self._counted_from = address
        super().connection_made(transport)
        self._arm(self.limits.http_header_timeout, "head")

    def data_received(self, data: bytes) -> None:
        """Parse, unless the connection was refused (then close once the head is in) or timed
        out (then drop it while the close lingers)."""
        if self._refused:
            if b"\r\n\r\n" in data:
                self.transport.close()
            return
        if self._lingering:
            return
        super().data_received(data)

    def _uncount(self) -> None:
        if self._counted_from is not None:
            self.counts.close_http(self._counted_from)
            self._counted_from = None

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone: no deadline is left to enforce, nor a place to hold."""
        if self._refused:
            return
        self._disarm()
        self._uncount()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A request's first byte (on a kept-alive connection too): its head must follow."""
        super().on_message_begin()
        if self._deadline is None:
            self._arm(self.limits.http_header_timeout, "head")

    def on_headers_complete(self) -> None:
        """The head is in; its body (if any) must follow in time."""
        self._disarm()
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._arm(self.limits.http_body_timeout, "body")

    def on_message_complete(self) -> None:
        """The whole request is in: nothing more to wait for until the next one."""
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        """Upgrade, unless the server holds as many websockets as it may (in all, or not yet
        acknowledged from this address); the connection then counts as a websocket."""
        self._disarm()
        address = self._counted_from or "unknown"
        if not self.counts.websocket_allowed(address):
            refusals.refused("websocket")
            self.transport.write(SERVICE_UNAVAILABLE)
            self.transport.close()
            return
        self._uncount()
        super().handle_websocket_upgrade()


class AnsweringWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol, sending the answer to a handshake its parser
    refused (431 for a header line too long, 414 for a request line) and closing; it holds its
    place in `counts` (a `WebSocketLease`, in the scope for the app) while it is open."""

    counts: ConnectionCounts = ConnectionCounts(ConnectionLimits())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The same behaviour in a few dozen bytes instead of ~3 KiB a socket (api.http.ws_lean).
        self.queue = LeanQueue()  # type: ignore[assignment]
        self.writable = LeanEvent()  # type: ignore[assignment]
        self.writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the websocket's place in the counts (the upgrade checked there is room)."""
        super().connection_made(transport)
        self.lease = WebSocketLease(self.counts, _address(transport))

    def connection_lost(self, exc: Exception | None) -> None:
        """Give the place back."""
        super().connection_lost(exc)
        self.lease.close()

    def handle_connect(self, event: Any) -> None:
        """The handshake: the app finds the lease, and this protocol, in its scope."""
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if isinstance(scope, dict):
            scope[WEBSOCKET_LEASE] = self.lease
            scope[WEBSOCKET_PROTOCOL] = (
                self  # shared results are written to it (api.http.ws_fanout)
            )
        # The scope has its own copy of the headers, and the response is made; the parsed
        # request stays referenced by the websockets library's parser for the connection's
        # lifetime, so its headers (1-3 KiB) are emptied rather than kept.
        event.headers.clear()

    async def send(self, message: Any) -> None:
        """Send; once the handshake is answered, its request and response (some 4 KiB of
        headers, read by uvicorn only until then) are let go."""
        await super().send(message)
        if self.handshake_complete and getattr(self, "response", None) is not None:
            self.request = self.response = None  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.handshake_exc is not None and not self.handshake_initiated:
            logger.debug("event=ws_handshake_refused error=%s", self.conn.handshake_exc)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()


def guarded_protocol(
    limits: ConnectionLimits, counts: ConnectionCounts | None = None
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http` option, enforcing `limits` with `counts`."""
    counts = counts or ConnectionCounts(limits)
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"limits": limits, "counts": counts},
    )


def uvicorn_limits(limits: ConnectionLimits) -> dict[str, Any]:
    """uvicorn's own options for `limits`: the protocols above sharing one `ConnectionCounts`
    (uvicorn's own cap stays off: it counts HTTP and websockets together), and its keep-alive
    timeout."""
    counts = ConnectionCounts(limits)
    websocket = type(
        "AnsweringWebSocketProtocol", (AnsweringWebSocketProtocol,), {"counts": counts}
    )
    return {
        "http": guarded_protocol(limits, counts),
        "ws": websocket,
        "limit_concurrency": None,
        "timeout_keep_alive": limits.http_keep_alive_timeout,
    }
