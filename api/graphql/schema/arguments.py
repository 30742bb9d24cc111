"""Checks of query and subscription arguments shared by the event-log fields."""

from __future__ import annotations

from typing import Annotated, TypeVar

import strawberry
from strawberry.types.unset import UnsetType

from api.graphql.schema.errors import BadUserInput
from domain.validation import ID_PATTERN

T = TypeVar("T")

OrderIdArgument = Annotated[strawberry.ID, strawberry.argument(description="The order's id.")]
"""An order's id, checked against the contract's pattern by `order_id_argument`."""

FromVersion = Annotated[
    int | None, strawberry.argument(description="Only events after this version.")
]
"""Where an order's event history starts (exclusive)."""

EventPageSize = Annotated[int | None, strawberry.argument(description="At most this many events.")]
"""How many events one page of the event log holds."""

AfterPosition = Annotated[
    str | None, strawberry.argument(description="Only events after this position.")
]
"""The event-log fields' cursor argument: an event position."""

EventTypes = Annotated[
    list[str] | None, strawberry.argument(description="Only events of these types.")
]
"""The event-log fields' filter on event types."""

MAX_EVENT_PAGE = 1000
"""The largest page a client may ask for: each event costs field resolution and encoding."""


def given(value: T | UnsetType | None) -> T | None:
    """An optional argument's value: None when omitted (UNSET) or null."""
    return None if isinstance(value, UnsetType) else value


def order_id_argument(value: object, name: str = "id") -> str:
    """An order id from an argument, or `BadUserInput`: never a stream name outside the pattern."""
    text = str(value)
    if ID_PATTERN.fullmatch(text) is None:
        raise BadUserInput(f"{name} is not a valid order id", name)
    return text


def page_size(value: int | None, name: str = "first", default: int = 100) -> int:
    """A page size 0..MAX_EVENT_PAGE (null: the default)."""
    value = given(value)
    if value is None:
        return default
    if not 0 <= value <= MAX_EVENT_PAGE:
        raise BadUserInput(f"{name} must be between 0 and {MAX_EVENT_PAGE}", name)
    return value


def non_negative(value: int | None, name: str) -> int:
    """A version or count that cannot be negative (null: 0)."""
    value = given(value)
    if value is None:
        return 0
    if value < 0:
        raise BadUserInput(f"{name} must be >= 0", name)
    return value


def cursor(value: str | None, name: str = "after") -> int | None:
    """A cursor (an event position, a decimal string) as an int; None: the start of the log."""
    value = given(value)
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 25:
        raise BadUserInput(f"{name} must be an event position (a decimal string)", name)
    return int(text)
