"""uvicorn's httptools protocol with the read timeouts and the connection cap it lacks, and its
websockets protocol answering the handshakes it refuses.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) and answers 503 past
`limit_concurrency`, but it waits forever for a request's headers or body (a client that opens a
connection and sends nothing, or one byte at a time, holds it), and it upgrades websockets
whatever the number of open connections. This protocol adds both: a deadline for the request
head, another for the body, and the cap applied to websocket upgrades too.

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

from api.limits import ConnectionLimits
from api.logs import refusals

logger = logging.getLogger(__name__)


def _plain_response(status_line: bytes, message: bytes) -> bytes:
    return b"".join(
        [
            status_line,
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(message)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            message,
        ]
    )


REQUEST_TIMEOUT = _plain_response(b"HTTP/1.1 408 Request Timeout\r\n", b"Request timeout.")
SERVICE_UNAVAILABLE = _plain_response(
    b"HTTP/1.1 503 Service Unavailable\r\n", b"Too many connections; retry shortly."
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One HTTP connection with deadlines for each request's head and body.

    The head deadline runs from the connection's start, and from the first byte of each later
    request on it (between requests, uvicorn's keep-alive timeout applies); the body deadline
    from the end of the head. Either one passing answers 408 (unless a response has begun)
    and closes the connection. `limits` is set by `guarded_protocol`.
    """

    limits: ConnectionLimits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

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
        # The application waiting for the body learns of the disconnect, and its answer (if it
        # still gives one) goes nowhere.
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection: its first request's head must arrive in time."""
        super().connection_made(transport)
        self._arm(self.limits.http_header_timeout, "head")

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone: no deadline is left to enforce."""
        self._disarm()
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
        """Upgrade, unless the server already holds as many connections as it may."""
        self._disarm()
        # `connections` still counts this one until the upgrade replaces it.
        if len(self.connections) > self.limits.max_connections:
            refusals.refused("websocket")
            self.transport.write(SERVICE_UNAVAILABLE)
            self.transport.close()
            return
        super().handle_websocket_upgrade()


class AnsweringWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol, sending the answer to a handshake its parser
    refused (431 for a header line too long, 414 for a request line) and closing."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.handshake_exc is not None and not self.handshake_initiated:
            logger.debug("event=ws_handshake_refused error=%s", self.conn.handshake_exc)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http` option, enforcing `limits`."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


def uvicorn_limits(limits: ConnectionLimits) -> dict[str, Any]:
    """uvicorn's own options for `limits`: the protocols above, its keep-alive timeout, and its
    503 past the cap (it counts the connection asking, hence one more)."""
    return {
        "http": guarded_protocol(limits),
        "ws": AnsweringWebSocketProtocol,
        "limit_concurrency": limits.max_connections + 1,
        "timeout_keep_alive": limits.http_keep_alive_timeout,
    }
