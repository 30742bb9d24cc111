"""What a client's websocket frame must be, on both GraphQL websocket protocols.

A frame is one JSON object as text. graphql-transport-ws closes the connection with 4400
("invalid message") when a frame breaks the protocol; the legacy graphql-ws protocol defines no
code for it, so the same one is used there. The checks follow the graphql-ws reference server's
message validation: each client message type with its required fields and their JSON types.
A message that passes reaches strawberry's handlers in the shape they index without checking,
so a client's mistake ends as a close frame, never as an exception in the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import orjson

PROTOCOL_ERROR: Final = 4400
"""Close code for a frame that breaks the protocol (graphql-transport-ws's "invalid message")."""

MAX_DEPTH: Final = 64
"""Nesting of a frame's JSON at most (objects and lists). An operation's message with its
variables is about 8 deep (a placeOrder's items); deep nesting only costs the server recursion
in every step that walks the values (coercion, sharing keys, encoding)."""

Protocol = Literal["graphql-transport-ws", "graphql-ws"]


class InvalidFrame(Exception):
    """A frame that breaks the protocol; `reason` is the close frame's reason (short, fixed
    text: it never echoes the client's bytes)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_frame(text: str) -> dict[str, object]:
    """The message a text frame carries: one JSON object nested at most MAX_DEPTH deep."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidFrame("WebSocket message must be valid JSON") from None
    if not isinstance(message, dict):
        raise InvalidFrame("WebSocket message must be a JSON object")
    if _too_deep(message, MAX_DEPTH):
        raise InvalidFrame(f"WebSocket message is nested deeper than {MAX_DEPTH} levels")
    return message


def _too_deep(value: object, limit: int) -> bool:
    """Whether `value` nests containers more than `limit` deep (iterative: no recursion)."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict):
            children: list[object] = list(current.values())
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


_OPERATION_START: Final = {"graphql-transport-ws": "subscribe", "graphql-ws": "start"}
_OPERATION_STOP: Final = {"graphql-transport-ws": "complete", "graphql-ws": "stop"}
_WITHOUT_ID: Final = {
    "graphql-transport-ws": frozenset({"connection_init", "ping", "pong"}),
    "graphql-ws": frozenset({"connection_init", "connection_terminate"}),
}


def check_message(message: Mapping[str, object], protocol: Protocol) -> None:
    """Raise `InvalidFrame` unless `message` is a client message of `protocol` with its fields
    of the right JSON types."""
    kind = message.get("type")
    if not isinstance(kind, str):
        raise InvalidFrame("Message type must be a string")
    if kind in _WITHOUT_ID[protocol]:
        _optional(message, "payload", dict, "Message payload must be an object")
        return
    if kind not in (_OPERATION_START[protocol], _OPERATION_STOP[protocol]):
        raise InvalidFrame("Unknown message type")
    operation_id = message.get("id")
    if not isinstance(operation_id, str) or not operation_id:
        raise InvalidFrame("Message id must be a non-empty string")
    if kind == _OPERATION_STOP[protocol]:
        return
    payload = message.get("payload")
    if not isinstance(payload, dict):
        raise InvalidFrame("Operation payload must be an object")
    _optional(payload, "extensions", dict, "Operation extensions must be an object")
    extensions = payload.get("extensions") or {}
    # A persisted query (Apollo's APQ) may name its document by hash alone.
    by_hash = isinstance(extensions, dict) and "persistedQuery" in extensions
    if not (isinstance(payload.get("query"), str) or (by_hash and payload.get("query") is None)):
        raise InvalidFrame("Operation query must be a string")
    _optional(payload, "variables", dict, "Operation variables must be an object")
    _optional(payload, "operationName", str, "Operation name must be a string")


def _optional(
    fields: Mapping[str, object], name: str, kind: type[dict[str, object]] | type[str], reason: str
) -> None:
    """An optional field is absent, null, or of its type."""
    value = fields.get(name)
    if value is not None and not isinstance(value, kind):
        raise InvalidFrame(reason)
