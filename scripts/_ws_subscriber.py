"""A cheap graphql-transport-ws subscriber for the fan-out benchmark: one asyncio protocol per
socket, no task, no websocket library.

A library client (the `websockets` package) costs a task, a reader coroutine and a few buffers per
connection and some 20-30 µs per message received; at 10,000 subscribers and 5 pushes a second
that is more CPU than the server spends sending, on the same 2 cores. This client parses the
frames itself (the server sends whole, unmasked text frames), masks its own few frames as RFC 6455
requires, and records the arrival time of each `next` message.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable

import orjson

NextHandler = Callable[[int, float, dict[str, object]], None]
"""Called with (subscriber index, arrival time, the `next` message's payload)."""

_TEXT, _CLOSE, _PING = 0x1, 0x8, 0x9


def client_frame(payload: bytes, opcode: int = _TEXT) -> bytes:
    """One masked client frame (FIN set) carrying `payload`."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    elif size < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    key = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
    return head + mask + masked


def _handshake(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
    ).encode()


class SubscriberProtocol(asyncio.Protocol):
    """One socket: handshake, `connection_init`, one `subscribe`; then `on_next` per push.
    `ready` resolves once subscribed (or fails with why the server refused)."""

    __slots__ = (
        "_buffer",
        "_closing",
        "_init",
        "_subscribe",
        "_upgraded",
        "index",
        "on_end",
        "on_next",
        "ready",
        "transport",
    )

    def __init__(
        self,
        index: int,
        token: str,
        query: str,
        on_next: NextHandler,
        on_end: Callable[[str], None],
        operation_id: str = "1",
    ) -> None:
        self.index = index
        self.on_next = on_next
        self.on_end = on_end
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._upgraded = False
        self._closing = False
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        self._init = client_frame(orjson.dumps(init))
        self._subscribe = client_frame(
            orjson.dumps({"type": "subscribe", "id": operation_id, "payload": {"query": query}})
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        transport.write(_handshake(host, port, "/graphql"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost: {exc}")

    def _fail(self, why: str) -> None:
        if self._closing:
            return
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        else:
            self.on_end(why)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buffer = self._buffer + data if self._buffer else data
        if not self._upgraded:
            head, found, rest = buffer.partition(b"\r\n\r\n")
            if not found:
                self._buffer = buffer
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                self._close()
                return
            self._upgraded = True
            self._send(self._init)
            buffer = rest
        self._buffer = self._frames(buffer, now)

    def _frames(self, buffer: bytes, now: float) -> bytes:
        """Handle every whole frame in `buffer`; the incomplete rest is returned."""
        while len(buffer) >= 2:
            opcode, size, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if size == 126:
                if len(buffer) < 4:
                    break
                size, start = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                if len(buffer) < 10:
                    break
                size, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + size:
                break
            payload, buffer = buffer[start : start + size], buffer[start + size :]
            if opcode == _TEXT:
                self._message(payload, now)
            elif opcode == _PING:
                self._send(client_frame(payload, 0xA))
            elif opcode == _CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._fail(f"closed {code} {payload[2:].decode(errors='replace')}")
                self._close()
                break
        return buffer

    def _message(self, payload: bytes, now: float) -> None:
        message = orjson.loads(payload)
        kind = message.get("type")
        if kind == "next":
            self.on_next(self.index, now, message["payload"])
        elif kind == "connection_ack":
            self._send(self._subscribe)
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == "ping":
            self._send(client_frame(b'{"type":"pong"}'))
        elif kind in ("error", "complete"):
            self.on_end(payload.decode())

    def _send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        """Close the socket (a close frame, then the connection)."""
        self._closing = True
        self._send(client_frame(b"\x03\xe8", _CLOSE))
        self._close()


async def open_subscriber(
    host: str,
    port: int,
    local_host: str,
    protocol: SubscriberProtocol,
) -> SubscriberProtocol:
    """Connect `protocol` from `local_host` (a loopback alias) and wait until it is subscribed
    (a minute at most)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(60.0):
        await loop.create_connection(lambda: protocol, host, port, local_addr=(local_host, 0))
        await protocol.ready
    return protocol
