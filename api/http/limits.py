"""The service's limits, and the ASGI middleware that enforces the transport's share of them
before anything is parsed.

- `QueryLimits`: what one GraphQL operation may ask for (cost, depth, aliases, expanded fields,
  tokens, query length, variables' size and depth, which documents are cached and how much memory
  the cache takes), applied by the schema extensions in `api.graphql.extensions`;
- `RequestLimits`: the transport's sizes (headers, body, response, websocket message), applied by
  `RequestLimitsMiddleware` here, in front of the whole app;
- `ConnectionLimits`: how long a connection may take to say who it is and what it wants, and how
  many may be open (HTTP and websockets counted apart, in all and per client address), applied by
  `api.http.protocol` and the websocket handlers. A connection costs a socket and memory before
  it has authenticated: these keep a client that opens many, sends nothing, or trickles its
  bytes from holding the server's resources;
- `BudgetLimits`: what one identity may hold or spend at once (requests in flight, websockets,
  subscriptions, commands per second), counted by `api.http.budgets`.

Every limit has a default and an environment variable, read by one reader (`_from_env`): whole
numbers at least 1, seconds greater than 0 (README "Request limits").
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

TOO_COMPLEX = "QUERY_TOO_COMPLEX"
"""The contract's code for a request over the cost, depth, alias or size limits."""


class Introspection(enum.StrEnum):
    """Who may introspect the schema (`INTROSPECTION`)."""

    STAFF = "staff"
    ALL = "all"
    OFF = "off"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryLimits:
    """What one GraphQL document may ask for; refused before execution with QUERY_TOO_COMPLEX
    (variables over their budgets with BAD_USER_INPUT).

    Each field's environment variable is its name in upper case (`max_cost`: `MAX_QUERY_COST`
    is the exception, see `_ENV_NAMES`)."""

    max_cost: int = 16_515_072
    """Bytes the answer's `data` may take at worst (`api.graphql.analysis`): every leaf at its bound
    (a string its longest text, an event's data the largest order), every list at its page
    size (the coerced `first`, else its bound, e.g. 100 items an order). Kept below
    `RequestLimits.max_response_bytes` (16 MiB) by the errors' share (at most 100 field errors,
    `api.graphql.execution`), so an operation within it gets an answer within the response cap: 16
    MiB less 256 KiB. The contract's default pages fit: `events` (100) with every event's data at
    its largest, or 100 orders with their items, cost about 9.6 MB."""
    max_depth: int = 10
    max_aliases: int = 30
    """Aliases in the operation with its fragments expanded."""
    max_fields: int = 1000
    """Field selections in the operation with its fragments expanded (a fragment spread twice
    counts twice): the work budget every rule shares. Checked before graphql-core's own
    validation, some of whose rules are super-linear in it."""
    max_tokens: int = 4000
    max_query_length: int = 65_536
    """Characters of the query text; comments and whitespace count, tokens alone do not bound
    the text."""
    max_variables_bytes: int = 262_144
    """The variables of one operation, as the JSON text they would encode to (refused with
    BAD_USER_INPUT past it; a placeOrder of 100 long-named items takes about 40 KB)."""
    max_variables_depth: int = 16
    """Nesting of lists and objects in the variables (an order's input is 4 deep)."""
    max_cached_document: int = 8192
    """Only query texts up to this many characters are kept in the parser and validation
    caches: a parsed document takes many times its text's size in memory."""
    cache_bytes: int = 67_108_864
    """Memory the cached documents may take, estimated from their tokens and text (a cached
    document keeps its tokens: about 600 bytes each); the least recently used go first."""
    introspection: Introspection = Introspection.STAFF

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> QueryLimits:
        """The limits set in `env` (unset or empty: the defaults)."""
        values = _from_env(cls, env, exclude={"introspection"})
        raw = env.get("INTROSPECTION", "").strip().lower()
        if raw:
            try:
                values["introspection"] = Introspection(raw)
            except ValueError:
                raise ValueError(
                    f"INTROSPECTION must be one of staff, all, off (got {raw!r})"
                ) from None
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestLimits:
    """Sizes the transport accepts; each field's environment variable is its name in upper case."""

    max_body_bytes: int = 1_048_576
    """An HTTP request body (a placeOrder of 100 long-named items is about 40 KB)."""
    max_header_bytes: int = 16_384
    """All request headers together, names and values, plus the query string."""
    max_response_bytes: int = 16_777_216
    """An HTTP response body; a larger answer is replaced by a QUERY_TOO_COMPLEX error (ask for
    smaller pages)."""
    max_ws_message_bytes: int = 1_048_576
    """One websocket message from the client; a larger one closes the connection with 1009."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RequestLimits:
        """The limits set in `env` (unset or empty: the defaults)."""
        return cls(**_from_env(cls, env))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimits:
    """The connection limits (seconds, except the `max_` counts); each field's environment
    variable is its name in upper case."""

    ws_init_timeout: float = 5.0
    """A websocket must send `connection_init` within this, else it is closed (4408); on both
    GraphQL websocket protocols."""
    http_header_timeout: float = 10.0
    """A request's line and headers must have arrived this long after the connection opened or
    the request's first byte, else it gets 408 and is closed."""
    http_body_timeout: float = 30.0
    """A request's body must have arrived this long after its headers, else 408 and closed."""
    http_keep_alive_timeout: float = 5.0
    """An idle keep-alive connection is closed after this."""
    max_http_connections: int = 1000
    """Open HTTP connections at most (websockets are counted apart); one more gets 503."""
    max_http_connections_per_address: int = 128
    """Open HTTP connections from one client address at most: a connection says who it is only
    with its first request, so until then it is counted by where it comes from. One more from
    that address gets 503. (Behind a reverse proxy every client shares its address: raise it.)"""
    max_websockets: int = 10_000
    """Open websockets at most (about 30 KiB each: 300 MiB at the cap); one more upgrade gets
    503. The process needs a file descriptor for each (`ulimit -n`)."""
    max_anonymous_websockets_per_address: int = 64
    """Websockets from one client address whose `connection_init` is not acknowledged yet; one
    more upgrade from that address gets 503."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConnectionLimits:
        """The limits set in `env` (unset or empty: the defaults). MAX_CONNECTIONS, one cap over
        HTTP and websockets together, is refused rather than ignored: its value would mean
        something else under either of the caps that replace it."""
        if env.get("MAX_CONNECTIONS", "").strip():
            raise ValueError(
                "MAX_CONNECTIONS is no longer read: HTTP connections and websockets are capped "
                "apart, by MAX_HTTP_CONNECTIONS and MAX_WEBSOCKETS"
            )
        return cls(**_from_env(cls, env))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetLimits:
    """What one identity (a customer's token subject; an anonymous caller's address) may hold or
    spend at once; past one, the answer is RATE_LIMITED with `retryAfter`. Staff tokens are held
    only to the global caps (`api.http.budgets.is_budgeted`). Each field's environment variable is
    its name in upper case."""

    max_requests_per_identity: int = 8
    """GraphQL requests over HTTP in flight at once (a browser opens at most 6 connections to a
    host); one more is answered 429."""
    max_websockets_per_identity: int = 16
    """Acknowledged websockets open at once (one per browser tab is usual); one more is closed
    with 1013 (try again later) instead of acknowledged."""
    max_subscriptions_per_socket: int = 100
    """Operations running at once on one websocket (subscriptions, and queries and mutations sent
    over it), for every caller."""
    max_subscriptions_per_identity: int = 200
    """Operations running at once over all of an identity's websockets."""
    commands_per_second: int = 10
    """Mutation fields executed a second, on average (a token bucket); every field counts, so
    30 aliased placeOrders spend 30."""
    command_burst: int = 60
    """The bucket's size: commands that may run at once after a quiet spell."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BudgetLimits:
        """The limits set in `env` (unset or empty: the defaults)."""
        return cls(**_from_env(cls, env))  # type: ignore[arg-type]


_ENV_NAMES = {"max_cost": "MAX_QUERY_COST", "max_depth": "MAX_QUERY_DEPTH"}


def env_name(field_name: str) -> str:
    """The environment variable that sets a limit."""
    return _ENV_NAMES.get(field_name, field_name.upper())


def _from_env(
    cls: type[QueryLimits] | type[RequestLimits] | type[ConnectionLimits] | type[BudgetLimits],
    env: Mapping[str, str],
    exclude: frozenset[str] | set[str] = frozenset(),
) -> dict[str, object]:
    """The fields of `cls` set in `env`: `int` fields as whole numbers at least 1, `float` fields
    as seconds greater than 0. Raises `ValueError` naming the variable."""
    values: dict[str, object] = {}
    for spec in fields(cls):
        if spec.name in exclude:
            continue
        name = env_name(spec.name)
        raw = env.get(name, "").strip()
        if not raw:
            continue
        if spec.type == "float":
            try:
                seconds = float(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number of seconds (got {raw!r})") from None
            if not math.isfinite(seconds) or seconds <= 0:
                raise ValueError(f"{name} must be greater than 0 (got {raw!r})")
            values[spec.name] = seconds
            continue
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{name} must be a whole number (got {raw!r})") from None
        if value < 1:
            raise ValueError(f"{name} must be at least 1 (got {value})")
        values[spec.name] = value
    return values


def too_complex_body(message: str) -> bytes:
    """A GraphQL error response body with the contract's code for limits."""
    return orjson.dumps({"errors": [{"message": message, "extensions": {"code": TOO_COMPLEX}}]})


class _BodyTooLarge(Exception):
    pass


class RequestLimitsMiddleware:
    """Refuses oversized requests before the app reads them, and oversized responses.

    - headers (with the query string) over `max_header_bytes`: HTTP 431; a websocket handshake
      is refused (403);
    - a body over `max_body_bytes`: HTTP 413, from its Content-Length alone when it says so,
      else as soon as the bytes received pass the limit (never more is held in memory). The
      connection stays open: uvicorn discards the rest of the body as it arrives, so a client
      still sending reads the 413 instead of a reset;
    - an HTTP response body over `max_response_bytes`: replaced by a QUERY_TOO_COMPLEX error;
    - a websocket message over `max_ws_message_bytes`: the connection is closed with 1009
      (message too big), and the app sees a disconnect.
    """

    def __init__(self, app: ASGIApp, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Apply the limits to one HTTP request or websocket connection."""
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _headers_size(self, scope: Scope) -> int:
        size = len(scope.get("query_string", b""))
        for name, value in scope.get("headers", ()):
            size += len(name) + len(value)
        return size

    async def _refuse(self, send: Send, status: int, message: str) -> None:
        body = too_complex_body(message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        limits = self.limits
        if self._headers_size(scope) > limits.max_header_bytes:
            logger.debug("event=request_refused reason=headers_too_large")
            await self._refuse(
                send, 431, f"Request headers exceed {limits.max_header_bytes} bytes."
            )
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        too_large = f"Request body exceeds {limits.max_body_bytes} bytes."
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            logger.debug("event=request_refused reason=body_too_large")
            await self._refuse(send, 413, too_large)
            return
        try:
            body_messages = await self._read_body(receive)
        except _BodyTooLarge:
            logger.debug("event=request_refused reason=body_too_large")
            await self._refuse(send, 413, too_large)
            return

        async def replay() -> Message:
            if body_messages:
                return body_messages.pop(0)
            return await receive()

        await self.app(scope, replay, self._bounded_responses(send))

    async def _read_body(self, receive: Receive) -> list[Message]:
        """The request's body messages, read up to the limit (then `_BodyTooLarge`)."""
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            received += len(message.get("body", b""))
            if received > self.limits.max_body_bytes:
                raise _BodyTooLarge
            if not message.get("more_body", False):
                return messages

    def _bounded_responses(self, send: Send) -> Send:
        limit = self.limits.max_response_bytes
        refused = False

        async def bounded(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start":
                length = dict(message.get("headers", ())).get(b"content-length")
                if length is not None and length.isdigit() and int(length) > limit:
                    refused = True
                    logger.info("event=response_refused bytes=%s limit=%d", length.decode(), limit)
                    await self._refuse(
                        send,
                        200,
                        f"The response would exceed {limit} bytes: ask for smaller pages.",
                    )
                    return
            elif refused:
                return  # the body of the response replaced above
            await send(message)

        return bounded

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        limits = self.limits
        if self._headers_size(scope) > limits.max_header_bytes:
            logger.debug("event=websocket_refused reason=headers_too_large")
            await send({"type": "websocket.close", "code": 1008})
            return
        closed = False

        async def bounded_receive() -> Message:
            nonlocal closed
            if closed:
                return {"type": "websocket.disconnect", "code": 1009}
            message = await receive()
            if message["type"] == "websocket.receive":
                size = len(message.get("text") or "") + len(message.get("bytes") or b"")
                if size > limits.max_ws_message_bytes:
                    closed = True
                    logger.debug("event=websocket_closed reason=message_too_large bytes=%d", size)
                    await send(
                        {"type": "websocket.close", "code": 1009, "reason": "Message too big"}
                    )
                    return {"type": "websocket.disconnect", "code": 1009}
            return message

        async def guarded_send(message: Message) -> None:
            if closed:
                return  # the connection is closing; the app may still try to answer
            await send(message)

        await self.app(scope, bounded_receive, guarded_send)
