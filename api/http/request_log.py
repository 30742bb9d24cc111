"""The request log: one line per GraphQL request over HTTP and per websocket operation, with its
correlation id, trace id, operation name, outcome and duration.

`event=request transport=http correlation_id=... trace_id=... operation=placeOrder outcome=ok
status=200 duration_ms=3.21`

The line is at DEBUG (`LOG_LEVEL=DEBUG`, logger `api.http.request_log`): quiet by default, as a line
per request at hundreds a second would cost more than the work it describes. Outcomes: `ok`, the
first error's `extensions.code` (`UNAVAILABLE`, `BAD_USER_INPUT`, ...), or `http_<status>` for an
HTTP refusal without a GraphQL error (`api.http.request_record`).

Every `/graphql` HTTP answer echoes `X-Correlation-Id`: the client's when it is a sane one
(`api.http.request_record.correlation_id_of`), else one made here and handed on to the request, so
the id a client reads back is the one in its events' metadata. When tracing is on, each /graphql
HTTP request is a server span (`request_span`), the child of the client's W3C `traceparent` when it
sends one, and the line's trace id is the span's; off, the trace id is the `traceparent` header's.
The span is made here rather than by a middleware of its own: each layer of the app is one more
frame every await of the request passes through.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.http.request_record import (
    CORRELATION_HEADER,
    RequestRecord,
    correlation_id_of,
    current_request,
    note_outcome,
)
from telemetry import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span

GRAPHQL_PATH = "/graphql"
_CORRELATION = CORRELATION_HEADER.encode("latin-1")
STATUS_ATTRIBUTE = "http.response.status_code"
"""The request's span's attribute for the answer's status (OpenTelemetry's HTTP convention)."""


def request_span(method: str, traceparent: str | None) -> AbstractContextManager[Span | None]:
    """The server span of one /graphql HTTP request (tracing on): a child of the client's W3C
    `traceparent` when it sends one."""
    return tracing.span(
        f"{method} {GRAPHQL_PATH}",
        parent=traceparent,
        kind="server",
        attributes={"http.request.method": method, "url.path": GRAPHQL_PATH},
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _with_correlation_id(scope: Scope) -> tuple[Scope, bytes]:
    """The scope with a sane X-Correlation-Id header (the client's, else a new one), so the
    context built from it (`api.graphql.view`) holds the id that is logged and echoed."""
    given = _header(scope, _CORRELATION)
    correlation_id = correlation_id_of(given)
    if correlation_id != given:
        headers = [(k, v) for k, v in scope["headers"] if k != _CORRELATION]
        headers.append((_CORRELATION, correlation_id.encode("latin-1")))
        scope = {**scope, "headers": headers}
    return scope, correlation_id.encode("latin-1")


class RequestLogMiddleware:
    """For /graphql: the correlation id taken or made and echoed (in every HTTP answer, and in
    a websocket's handshake answer); for HTTP, the request made current for the layers that
    note its operation and outcome, and its line (a websocket's operations have theirs,
    `api.graphql.ws_request_log`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass everything else through; echo around /graphql, and log its HTTP requests."""
        if scope["type"] not in ("http", "websocket") or scope["path"] != GRAPHQL_PATH:
            await self.app(scope, receive, send)
            return
        scope, correlation_id = _with_correlation_id(scope)
        echoed = (_CORRELATION, correlation_id)
        if scope["type"] == "websocket":

            async def accept_with_id(message: Message) -> None:
                if message["type"] == "websocket.accept":
                    message = {**message, "headers": [*message.get("headers", ()), echoed]}
                await send(message)

            await self.app(scope, receive, accept_with_id)
            return
        traceparent = _header(scope, b"traceparent")
        record = RequestRecord(
            transport="http",
            correlation_id=correlation_id.decode("latin-1"),
            traceparent=traceparent,
        )
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        # The request's span (tracing on) is current while the app answers and the line is
        # written (whose trace id is then the span's).
        with request_span(scope["method"], traceparent) as span, current_request(record):
            try:
                await self.app(scope, receive, send_with_id)
            except BaseException:
                note_outcome("INTERNAL_SERVER_ERROR")
                status = status or 500
                raise
            finally:
                if status and span is not None:  # an answer started, or the 500 of an error
                    span.set_attribute(STATUS_ATTRIBUTE, status)
                record.log(status)
