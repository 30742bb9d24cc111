"""The API's spans (`telemetry.tracing`): one per /graphql HTTP request, a child of the client's
W3C `traceparent` when it sends one, and one per GraphQL operation inside it (made by the request
log's schema extension). Both are added to the app only when tracing is on, so with it off the
request path is the same as without them.
"""

from __future__ import annotations

from collections.abc import Iterator

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.http.request_record import RequestLogExtension
from telemetry import tracing

GRAPHQL_PATH = "/graphql"


def _traceparent(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"traceparent":
            return str(value.decode("latin-1"))
    return None


class TraceMiddleware:
    """A server span for each /graphql HTTP request, current while the app answers it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass everything else through; trace /graphql over HTTP."""
        if scope["type"] != "http" or scope["path"] != GRAPHQL_PATH:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        attributes = {"http.request.method": method, "url.path": GRAPHQL_PATH}
        # The request log, inside, sets the response's status on the span (it notes it for its
        # line anyway: one wrapper of `send` rather than two).
        with tracing.span(
            f"{method} {GRAPHQL_PATH}",
            parent=_traceparent(scope),
            kind="server",
            attributes=attributes,
        ):
            await self.app(scope, receive, send)


def trace_middleware() -> list[Middleware]:
    """The middleware to add outside the request log (so its line has the span's trace id)."""
    return [Middleware(TraceMiddleware)] if tracing.enabled() else []


class TracedRequestLogExtension(RequestLogExtension):
    """The request log's extension with a span per GraphQL operation (query or mutation; a
    subscription's lifetime is no span, its pushes are), named by its type and name once they
    are known. One extension rather than one more: strawberry builds each extension and wraps
    its hook in a context manager for every operation, which cost more than the span."""

    def on_operation(self) -> Iterator[None]:
        """The operation runs inside the span; the request log notes its name."""
        with tracing.span("graphql") as span:
            yield from super().on_operation()
            if span is not None:
                context = self.execution_context
                operation_type = context.operation_type.value if context.operation_type else ""
                span.update_name(f"{operation_type} {context.operation_name or ''}".strip())


def request_log_extension() -> type[RequestLogExtension]:
    """The request log's schema extension, with the operation's span when tracing is on."""
    return TracedRequestLogExtension if tracing.enabled() else RequestLogExtension
