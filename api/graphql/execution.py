"""The GraphQL executor the schema runs with: strawberry's, with per-event memory kept per event,
freed without the garbage collector, and a bound on its errors.

graphql-core runs each subscription event on a shallow copy of the subscription's executor, so
every copy shares one memo of collected subfields, keyed by the identity of that event's own
field lists. Each event therefore adds entries that live as long as the subscription, and the
memo outlives it until a full garbage collection finds the cycle it sits in: an `events`
subscription replaying thousands of events kept megabytes per subscriber. A fresh memo per event
keeps the memoisation within one event (where it pays: lists of the same type) and lets it go
with the event.

graphql-core's executor holds helpers for resolvers' asynchronous work whose bound methods refer
back to it: every operation was a reference cycle, holding the request's whole object graph (its
context, the Starlette request, the parsed arguments: ~70 containers) until the cyclic collector
found it. Under load those collections were a large part of a request's CPU. Once the operation's
response is built with no asynchronous work left, the executor lets go of the helpers, and
reference counting frees the operation at once.

The document analysis bounds the bytes of an answer's `data` before it runs; its errors are
bounded here, while it runs: past `MAX_FIELD_ERRORS` field errors, execution stops with one
QUERY_TOO_COMPLEX error (`data` null), so a document whose every list element fails cannot build
an answer of thousands of errors.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from api.http.limits import TOO_COMPLEX

MAX_FIELD_ERRORS = 100
"""Field errors one answer (or one subscription event) may carry."""


class PerEventMemoExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, whose per-event copies memoise on their own."""

    def build_per_event_executor(self, payload: Any) -> Any:
        """The event's executor, with a memo of its own."""
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor

    def build_response(self, data: dict[str, Any] | None) -> Any:
        """graphql-core's response; then, with no asynchronous work left, the executor lets go
        of its helpers, whose bound methods refer back to it (see the module docstring)."""
        response = super().build_response(data)
        if not self.background_futures and not self.pending_incremental_futures:
            del self.async_helpers
        return response

    def handle_field_error(self, raw_error: Exception, *args: Any, **kwargs: Any) -> None:
        """Collect a field's error, or stop the whole execution once errors are too many."""
        if len(self.collected_errors.errors) >= MAX_FIELD_ERRORS:
            raise GraphQLError(
                f"The answer has more than {MAX_FIELD_ERRORS} errors: execution stopped (ask "
                "for smaller pages, or fix the arguments that fail).",
                extensions={"code": TOO_COMPLEX},
            )
        super().handle_field_error(raw_error, *args, **kwargs)
