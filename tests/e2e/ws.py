"""Minimal GraphQL websocket clients: `graphql-transport-ws` and the legacy `graphql-ws`.

One reader task per connection routes server messages by subscription id into queues, so a test
can hold several subscriptions on one socket and wait on each with a bounded wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.e2e.gql import JSON

Protocol = Literal["graphql-transport-ws", "graphql-ws"]


class WsRejected(AssertionError):
    """The server refused the connection: a close frame, or graphql-ws's `connection_error`."""

    def __init__(self, code: int | None, reason: str, *, connection_error: bool = False) -> None:
        super().__init__(f"websocket rejected: close code {code} {reason!r}")
        self.code = code
        self.reason = reason
        self.connection_error = connection_error


@dataclass(frozen=True, slots=True, kw_only=True)
class WsMessage:
    """A server message for one subscription, the same shape for both protocols."""

    kind: Literal["next", "error", "complete", "closed"]
    payload: Any = None


class Subscription:
    """One operation on a `GraphQLWebSocket`; messages arrive in its queue in server order."""

    def __init__(self, socket: GraphQLWebSocket, op_id: str) -> None:
        self.socket = socket
        self.id = op_id
        self.queue: asyncio.Queue[WsMessage] = asyncio.Queue()

    async def message(self, within: float = 10.0) -> WsMessage:
        """The next message, or an AssertionError naming the subscription after `within` seconds."""
        try:
            async with asyncio.timeout(within):
                return await self.queue.get()
        except TimeoutError:
            raise AssertionError(
                f"no message on subscription {self.id} within {within} s"
            ) from None

    async def result(self, within: float = 10.0) -> JSON:
        """The next execution result (`{"data": ..., "errors": ...}`); fails on anything else."""
        msg = await self.message(within)
        assert msg.kind == "next", f"expected a result on {self.id}, got {msg}"
        payload: JSON = msg.payload
        return payload

    async def event(self, field: str, within: float = 10.0) -> JSON:
        """The next result's `data[field]`, which must come without errors."""
        payload = await self.result(within)
        assert not payload.get("errors"), f"subscription errors: {payload['errors']}"
        value: JSON = payload["data"][field]
        return value

    async def events(self, field: str, count: int, within: float = 10.0) -> list[JSON]:
        """The next `count` results' `data[field]`."""
        return [await self.event(field, within) for _ in range(count)]

    async def assert_quiet(self, seconds: float = 0.3) -> None:
        """Nothing more arrives within `seconds` (a bounded check for duplicates)."""
        try:
            async with asyncio.timeout(seconds):
                msg = await self.queue.get()
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message on {self.id}: {msg}")

    async def stop(self) -> None:
        """Ask the server to stop this operation."""
        await self.socket.stop(self.id)


class GraphQLWebSocket:
    """A connection speaking one of the two GraphQL websocket protocols."""

    def __init__(self, ws: ClientConnection, protocol: Protocol) -> None:
        self.ws = ws
        self.protocol = protocol
        self._subscriptions: dict[str, Subscription] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self.close_code: int | None = None

    async def _send(self, message: JSON) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def _init(self, token: str | None, within: float) -> None:
        payload: JSON = {} if token is None else {"authorization": f"Bearer {token}"}
        await self._send({"type": "connection_init", "payload": payload})
        try:
            async with asyncio.timeout(within):
                while True:
                    message = orjson.loads(await self.ws.recv())
                    if message["type"] == "connection_ack":
                        break
                    if message["type"] == "connection_error":  # the legacy protocol's refusal
                        raise WsRejected(None, str(message.get("payload")), connection_error=True)
                    if message["type"] in ("ka", "ping"):
                        if message["type"] == "ping":
                            await self._send({"type": "pong"})
                        continue
                    raise WsRejected(None, f"unexpected message before ack: {message}")
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            reason = closed.rcvd.reason if closed.rcvd else ""
            raise WsRejected(code, reason) from None
        except TimeoutError:
            raise AssertionError(f"no connection_ack within {within} s") from None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = orjson.loads(raw)
                kind = message["type"]
                if kind == "ping":
                    await self._send({"type": "pong"})
                    continue
                if kind in ("ka", "pong"):
                    continue
                sub = self._subscriptions.get(message.get("id", ""))
                if sub is None:
                    continue
                if kind in ("next", "data"):
                    sub.queue.put_nowait(WsMessage(kind="next", payload=message["payload"]))
                elif kind == "error":
                    sub.queue.put_nowait(WsMessage(kind="error", payload=message.get("payload")))
                elif kind == "complete":
                    sub.queue.put_nowait(WsMessage(kind="complete"))
        except ConnectionClosed:
            pass  # reported to every subscription below
        finally:
            self.close_code = self.ws.close_code
            for sub in self._subscriptions.values():
                sub.queue.put_nowait(WsMessage(kind="closed", payload=self.ws.close_code))

    async def subscribe(self, query: str, variables: JSON | None = None) -> Subscription:
        """Start an operation and return its subscription."""
        sub = Subscription(self, str(next(self._ids)))
        self._subscriptions[sub.id] = sub
        kind = "subscribe" if self.protocol == "graphql-transport-ws" else "start"
        await self._send(
            {"type": kind, "id": sub.id, "payload": {"query": query, "variables": variables or {}}}
        )
        return sub

    async def stop(self, op_id: str) -> None:
        """Stop one operation."""
        kind = "complete" if self.protocol == "graphql-transport-ws" else "stop"
        await self._send({"type": kind, "id": op_id})

    async def close(self) -> None:
        """Close the socket and end the reader task."""
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


@contextlib.asynccontextmanager
async def graphql_ws(
    url: str,
    token: str | None,
    protocol: Protocol = "graphql-transport-ws",
    within: float = 10.0,
    headers: dict[str, str] | None = None,
    local_addr: tuple[str, int] | None = None,
) -> AsyncIterator[GraphQLWebSocket]:
    """An acknowledged GraphQL websocket connection (raises `WsRejected` if refused); `headers`
    go with the handshake; `local_addr` binds the client's end (another loopback address is
    another client)."""
    async with connect(
        url,
        subprotocols=[Subprotocol(protocol)],
        proxy=None,
        open_timeout=within,
        additional_headers=headers,
        local_addr=local_addr,
    ) as ws:
        assert ws.subprotocol == protocol, f"server chose subprotocol {ws.subprotocol!r}"
        client = GraphQLWebSocket(ws, protocol)
        try:
            await client._init(token, within)
            yield client
        finally:
            await client.close()
