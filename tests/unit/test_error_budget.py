"""The executor's error budget: an answer carries at most `MAX_FIELD_ERRORS` field errors, then
stops with one QUERY_TOO_COMPLEX error."""

from __future__ import annotations

import strawberry

from api.graphql.execution import MAX_FIELD_ERRORS, PerEventMemoExecutionContext


@strawberry.type
class Line:
    """A line whose one field always fails."""

    @strawberry.field
    def broken(self) -> str:
        """Fails."""
        raise ValueError("broken")


@strawberry.type
class Query:
    """Many nullable lines, each failing on its own."""

    @strawberry.field
    def lines(self, count: int) -> list[Line | None]:
        """`count` lines."""
        return [Line() for _ in range(count)]


SCHEMA = strawberry.Schema(query=Query, execution_context_class=PerEventMemoExecutionContext)


async def test_errors_within_the_budget_are_all_reported() -> None:
    result = await SCHEMA.execute(f"{{ lines(count: {MAX_FIELD_ERRORS}) {{ broken }} }}")
    assert result.data == {"lines": [None] * MAX_FIELD_ERRORS}
    assert len(result.errors or []) == MAX_FIELD_ERRORS


async def test_past_the_budget_execution_stops_with_one_coded_error() -> None:
    result = await SCHEMA.execute("{ lines(count: 5000) { broken } }")
    errors = result.errors or []
    assert result.data is None
    assert len(errors) <= MAX_FIELD_ERRORS + 2
    assert (errors[-1].extensions or {}).get("code") == "QUERY_TOO_COMPLEX"
