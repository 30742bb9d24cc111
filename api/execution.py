"""The GraphQL executor the schema runs with: strawberry's, with per-event memory kept per event.

graphql-core runs each subscription event on a shallow copy of the subscription's executor, so
every copy shares one memo of collected subfields, keyed by the identity of that event's own
field lists. Each event therefore adds entries that live as long as the subscription, and the
memo outlives it until a full garbage collection finds the cycle it sits in: an `events`
subscription replaying thousands of events kept megabytes per subscriber. A fresh memo per event
keeps the memoisation within one event (where it pays: lists of the same type) and lets it go
with the event.
"""

from __future__ import annotations

from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class PerEventMemoExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, whose per-event copies memoise on their own."""

    def build_per_event_executor(self, payload: Any) -> Any:
        """The event's executor, with a memo of its own."""
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor
