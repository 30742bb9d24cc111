"""The request log: one line per GraphQL request over HTTP and per websocket operation, with its
correlation id, trace id, operation name, outcome and duration.

`event=request transport=http correlation_id=... trace_id=... operation=placeOrder outcome=ok
status=200 duration_ms=3.21`

The line is at DEBUG (`LOG_LEVEL=DEBUG`, logger `api.request_log`): quiet by default, as a line
per request at hundreds a second would cost more than the work it describes. Outcomes: `ok`, the
first error's `extensions.code` (`UNAVAILABLE`, `BAD_USER_INPUT`, ...), or `http_<status>` for an
HTTP refusal without a GraphQL error (`api.request_record`).

Every `/graphql` HTTP answer echoes `X-Correlation-Id`: the client's when it is a sane one
(`api.view.correlation_id_of`), else one made here and handed on to the request, so the id a
client reads back is the one in its events' metadata. The trace id comes from a W3C
`traceparent` header when one is sent.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.request_record import RequestRecord, current_request, note_outcome, trace_id_of
from api.view import CORRELATION_HEADER, correlation_id_of

GRAPHQL_PATH = "/graphql"
_CORRELATION = CORRELATION_HEADER.encode("latin-1")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestLogMiddleware:
    """For HTTP requests to /graphql: the correlation id taken or made (and echoed), the
    request made current for the layers that note its operation and outcome, and its line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass everything else through; log and echo around /graphql over HTTP."""
        if scope["type"] != "http" or scope["path"] != GRAPHQL_PATH:
            await self.app(scope, receive, send)
            return
        given = _header(scope, _CORRELATION)
        correlation_id = correlation_id_of(given)
        if correlation_id != given:
            headers = [(k, v) for k, v in scope["headers"] if k != _CORRELATION]
            headers.append((_CORRELATION, correlation_id.encode("latin-1")))
            scope = {**scope, "headers": headers}
        record = RequestRecord(
            transport="http",
            correlation_id=correlation_id,
            trace_id=trace_id_of(_header(scope, b"traceparent")),
        )
        echoed = (_CORRELATION, correlation_id.encode("latin-1"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        with current_request(record):
            try:
                await self.app(scope, receive, send_with_id)
            except BaseException:
                note_outcome("INTERNAL_SERVER_ERROR")
                status = status or 500
                raise
            finally:
                record.log(status)
