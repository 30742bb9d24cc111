"""The contract's scalars: DateTime (ISO-8601 UTC with offset), Decimal (exact, a string), JSON.

Parsers raise `GraphQLError`, so a malformed value is a standard GraphQL error for the client,
never an unexpected (masked) one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

from application.timestamps import format_timestamp


def _serialize_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_timestamp(value)


def _parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise GraphQLError("DateTime must be an ISO-8601 string with a UTC offset.")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise GraphQLError(
            f"DateTime must be ISO-8601, got {value!r}.", extensions={"code": "BAD_USER_INPUT"}
        ) from error
    if moment.tzinfo is None:
        raise GraphQLError("DateTime needs an offset (e.g. 'Z' or '+00:00').")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # An offset that moves the moment past year 1 or 9999: the client can fix it.
        raise GraphQLError(
            f"DateTime {value!r} is out of range in UTC.", extensions={"code": "BAD_USER_INPUT"}
        ) from None


def _serialize_decimal(value: Decimal) -> str:
    return str(value)


def _parse_decimal(value: object) -> Decimal:
    # Strings are the contract's money shape; integers are unambiguous too. Floats are refused:
    # their text is not the number the client meant to send ("0.1" as a float is not 0.1).
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise GraphQLError('Decimal must be a string such as "19.99".')
    try:
        return Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation as error:
        raise GraphQLError(f"Decimal must be a decimal number, got {value!r}.") from error


def _identity(value: object) -> object:
    return value


DATETIME = strawberry.scalar(
    name="DateTime",
    description="A moment as ISO-8601 with an offset, in UTC (e.g. 2024-05-01T12:00:00.000000Z).",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)
DECIMAL = strawberry.scalar(
    name="Decimal",
    description='An exact decimal number as a string, e.g. "99.99". Money is always a Decimal.',
    serialize=_serialize_decimal,
    parse_value=_parse_decimal,
)
JSON_SCALAR = strawberry.scalar(
    name="JSON",
    description="Any JSON value (objects keep their camelCase keys).",
    serialize=_identity,
    parse_value=_identity,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {
    datetime: DATETIME,
    Decimal: DECIMAL,
    JSON: JSON_SCALAR,
}
"""Python types to the contract's scalars, for `StrawberryConfig(scalar_map=...)`."""
