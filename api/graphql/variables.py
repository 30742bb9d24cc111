"""The budget on an operation's variables: their size as JSON text and their nesting, checked
before anything coerces them (graphql's coercion recurses, and a large unused variable still
costs memory for as long as its operation lives).

The walk is iterative and stops as soon as a budget is spent, so a variable nested thousands of
lists deep or megabytes long is refused in time proportional to the budget, not to the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import GraphQLError

BAD_USER_INPUT = "BAD_USER_INPUT"

_SCALAR_BYTES = 24
"""What a number, boolean or null is counted as (at most its JSON text, for the numbers JSON
decoders accept without an exponent: a longer integer is counted by its digits)."""


def _scalar_size(value: object) -> int:
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return value.bit_length() // 3 + 2  # digits, roughly; never less than a third
    return _SCALAR_BYTES if isinstance(value, (int, float)) else 5


def variables_error(
    variables: Mapping[str, Any] | None, max_bytes: int, max_depth: int
) -> GraphQLError | None:
    """Why `variables` are over their budgets, or None."""
    if not variables:
        return None
    size = 2
    stack: list[tuple[object, int]] = [(variables, 1)]
    while stack:
        value, depth = stack.pop()
        if value is None or isinstance(value, (str, int, float)):
            size += _scalar_size(value)  # most values: tested before the Mapping ABC
        elif isinstance(value, Mapping):
            if depth > max_depth:
                return _refused(f"Variables are nested more than {max_depth} deep.")
            size += 2 + len(value)
            if size > max_bytes:
                break
            for key, item in value.items():
                size += len(str(key)) + 3
                stack.append((item, depth + 1))
        elif isinstance(value, (list, tuple)):
            if depth > max_depth:
                return _refused(f"Variables are nested more than {max_depth} deep.")
            size += 2 + len(value)
            if size > max_bytes:
                break
            stack.extend((item, depth + 1) for item in value)
        else:
            size += _scalar_size(value)
        if size > max_bytes:
            break
    if size > max_bytes:
        return _refused(f"Variables take more than {max_bytes} bytes.")
    return None


def _refused(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": BAD_USER_INPUT})
