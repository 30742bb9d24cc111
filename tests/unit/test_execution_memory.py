"""An executed operation is freed by reference counting alone: it leaves no reference cycle for
the garbage collector (whose collections were a large part of a request's CPU under load)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
import strawberry

from api.graphql.execution import PerEventMemoExecutionContext


class Context:
    """Stands for the request's context, which the executor refers to."""


@strawberry.type
class Item:
    """A union member."""

    name: str


@strawberry.type
class Other:
    """Another union member."""

    code: int


@strawberry.type
class Query:
    """Fields that complete at once and after a suspension, through a union."""

    @strawberry.field
    async def item(self) -> Item | Other:
        """An item, after giving the loop a turn."""
        await asyncio.sleep(0)
        return Item(name="a")

    @strawberry.field
    def items(self) -> list[Item]:
        """Items at once."""
        return [Item(name="b"), Item(name="c")]


SCHEMA = strawberry.Schema(query=Query, execution_context_class=PerEventMemoExecutionContext)


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("collector_off")
async def test_the_context_is_freed_with_the_result() -> None:
    context = Context()
    freed = weakref.ref(context)
    result = await SCHEMA.execute(
        "{ item { ... on Item { name } ... on Other { code } } items { name } }",
        context_value=context,
    )
    assert result.errors is None
    del context, result
    assert freed() is None
