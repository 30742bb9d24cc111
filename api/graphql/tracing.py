"""The GraphQL operation's span (`telemetry.tracing`): one per query or mutation, inside the
request's (`api.http.request_log.request_span`), made by the request log's schema extension and
added only when tracing is on, so with it off the operation's path is the same as without it.
"""

from __future__ import annotations

from collections.abc import Iterator

from api.http.request_record import RequestLogExtension, note_operation, operation_of
from telemetry import tracing


class TracedRequestLogExtension(RequestLogExtension):
    """The request log's extension with a span per GraphQL operation (query or mutation; a
    subscription's lifetime is no span, its pushes are), named by its type and name once they
    are known. One extension rather than one more: strawberry builds each extension and wraps
    its hook in a context manager for every operation, which cost more than the span."""

    def on_operation(self) -> Iterator[None]:
        """The operation runs inside the span; the request log notes its name."""
        with tracing.span("graphql") as span:
            yield
            context = self.execution_context
            name = context.operation_name or ""
            note_operation(name)
            if span is not None:
                # The operation's type read from the parsed document once (strawberry's
                # `operation_type` looks the operation up again, and its name too).
                document = context.graphql_document
                operation = operation_of(document, name or None) if document else None
                kind = operation.operation.value if operation is not None else ""
                span.update_name(f"{kind} {name}".strip())


def request_log_extension() -> type[RequestLogExtension]:
    """The request log's schema extension, with the operation's span when tracing is on."""
    return TracedRequestLogExtension if tracing.enabled() else RequestLogExtension
