"""How long a connection may take to say who it is and what it wants, and how many may be open.

A connection costs a socket and memory before it has authenticated: these limits keep a client
that opens many, sends nothing, or trickles its bytes from holding the server's resources.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


class LimitError(ValueError):
    """A limit set to something that is not a positive number; the message names it."""


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise LimitError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise LimitError(f"{name} must be greater than 0, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimits:
    """The connection limits (seconds, except `max_connections`)."""

    ws_init_timeout: float = 5.0
    """WS_INIT_TIMEOUT: a websocket must send `connection_init` within this, else it is closed
    (4408); on both GraphQL websocket protocols."""
    http_header_timeout: float = 10.0
    """HTTP_HEADER_TIMEOUT: a request's line and headers must have arrived this long after the
    connection opened or the request's first byte, else it gets 408 and is closed."""
    http_body_timeout: float = 30.0
    """HTTP_BODY_TIMEOUT: a request's body must have arrived this long after its headers, else
    408 and closed."""
    http_keep_alive_timeout: float = 5.0
    """HTTP_KEEP_ALIVE_TIMEOUT: an idle keep-alive connection is closed after this."""
    max_connections: int = 1000
    """MAX_CONNECTIONS: open connections (HTTP and websocket) at most; one more gets 503."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConnectionLimits:
        """The limits from `env`; unset or empty means the default. Raises `LimitError`."""
        default = cls()
        connections = _positive(env, "MAX_CONNECTIONS", default.max_connections)
        if connections != int(connections):
            raise LimitError(f"MAX_CONNECTIONS must be a whole number, got {connections}")
        return cls(
            ws_init_timeout=_positive(env, "WS_INIT_TIMEOUT", default.ws_init_timeout),
            http_header_timeout=_positive(env, "HTTP_HEADER_TIMEOUT", default.http_header_timeout),
            http_body_timeout=_positive(env, "HTTP_BODY_TIMEOUT", default.http_body_timeout),
            http_keep_alive_timeout=_positive(
                env, "HTTP_KEEP_ALIVE_TIMEOUT", default.http_keep_alive_timeout
            ),
            max_connections=int(connections),
        )
