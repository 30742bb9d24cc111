"""Shared results written straight to each subscriber's socket.

A shared live query (`api.graphql.shared_subscriptions`) pushes the same message to thousands of
sockets. Sent the ASGI way, each push wakes the subscriber's task, goes through Starlette's and
strawberry's send, uvicorn's `send` and the websockets library's framing: about 40 µs of server
CPU a message. The frame is the same bytes for every subscriber using the same operation id, so
it is built once (`text_frame`) and written to each socket's transport from the stream's own
loop (`FrameWriter`): a few µs, most of it the system call.

The socket is uvicorn's websockets (sans-I/O) protocol (`api.http.protocol` puts it in the
scope under WEBSOCKET_PROTOCOL). Its frames are whole messages written in one `transport.write`
each, so a frame written here never lands inside another; it writes nothing once the closing
handshake began, and nothing while its transport is paused (the write buffer is over its high
mark: the client does not read), which leaves the result to the subscriber's task, whose send
waits for the buffer to drain, as every other message's does.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

WEBSOCKET_PROTOCOL: Final = "orders.websocket_protocol"
"""The websocket scope's key for the uvicorn protocol serving the socket."""

_FIN_TEXT: Final = 0x81


def frame_head(size: int) -> bytes:
    """The head of an unmasked, final text frame carrying `size` bytes: what a server sends
    (RFC 6455 5.2), without compression (the server negotiates none)."""
    if size < 126:
        return bytes((_FIN_TEXT, size))
    if size < 65536:
        return bytes((_FIN_TEXT, 126)) + size.to_bytes(2, "big")
    return bytes((_FIN_TEXT, 127)) + size.to_bytes(8, "big")


def text_frame(message: bytes) -> bytes:
    """`message` (UTF-8 text) as one whole frame."""
    return frame_head(len(message)) + message


class Written(enum.Enum):
    """What became of a frame offered to a socket."""

    SENT = "sent"
    HELD = "held"  # not written (the client is not reading, or the subscriber's task must send)
    CLOSED = "closed"  # the socket or the operation is over: nothing more is sent on it


class FrameWriter:
    """Writes whole frames to one websocket's transport, when it may."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    @classmethod
    def of(cls, scope: Mapping[str, object]) -> FrameWriter | None:
        """The writer of the socket `scope` describes; None when frames cannot be written
        directly (another server or protocol, or an extension such as compression that changes
        frames)."""
        protocol = scope.get(WEBSOCKET_PROTOCOL)
        if not isinstance(protocol, WebSocketsSansIOProtocol) or protocol.conn.extensions:
            return None
        return cls(protocol)

    def write(self, frame: bytes) -> Written:
        """Write `frame` unless the socket is closing (CLOSED) or its client is not reading
        (HELD). Every way uvicorn's protocol closes (our close frame, the client's, a protocol
        error, a lost connection) sets `close_sent` or closes the transport."""
        protocol = self._protocol
        transport = protocol.transport
        if protocol.close_sent or transport.is_closing():
            return Written.CLOSED
        if not protocol.writable.is_set():
            return Written.HELD
        transport.write(frame)
        return Written.SENT
