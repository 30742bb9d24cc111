"""The typed refusals of a command: the `CommandError` members of `CommandResult`."""

from __future__ import annotations

import enum

import strawberry
from graphql import GraphQLError

from api.graphql.schema.types import OrderStatusGQL
from domain import errors as domain


class BadUserInput(GraphQLError):
    """A query argument out of range (a bad id, cursor or page size): a top-level error, since
    queries have no typed refusals."""

    def __init__(self, message: str, argument: str) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT", "argument": argument})


@strawberry.enum(name="ErrorCode", description="Why a command was refused.")
class ErrorCode(enum.Enum):
    """Why a command was refused."""

    VALIDATION_FAILED = strawberry.enum_value(
        "VALIDATION_FAILED", description="The input breaks a rule whatever the order's state."
    )
    ORDER_NOT_FOUND = strawberry.enum_value("ORDER_NOT_FOUND", description="No order has that id.")
    ORDER_ALREADY_EXISTS = strawberry.enum_value(
        "ORDER_ALREADY_EXISTS", description="An order with that id was already placed."
    )
    INVALID_TRANSITION = strawberry.enum_value(
        "INVALID_TRANSITION", description="The order's current status does not allow it."
    )
    CONCURRENCY_CONFLICT = strawberry.enum_value(
        "CONCURRENCY_CONFLICT", description="The order is not at the expected version."
    )


@strawberry.interface(description="A command refused for a reason the caller can act on.")
class CommandError:
    """A command refused for a reason the caller can act on."""

    code: ErrorCode = strawberry.field(description="The kind of refusal.")
    message: str = strawberry.field(description="A human-readable explanation.")


@strawberry.type(description="The input breaks a rule; nothing was written.")
class ValidationFailed(CommandError):
    """The input breaks a rule; nothing was written."""

    field: str | None = strawberry.field(
        description='The input path of the bad value, e.g. "items[2].price".'
    )


@strawberry.type(description="No order has that id; nothing was written.")
class OrderNotFound(CommandError):
    """No order has that id; nothing was written."""

    order_id: strawberry.ID = strawberry.field(description="The id that was not found.")


@strawberry.type(description="An order with that id already exists; nothing was written.")
class OrderAlreadyExists(CommandError):
    """An order with that id already exists; nothing was written."""

    order_id: strawberry.ID = strawberry.field(description="The id already taken.")


@strawberry.type(description="The order's status does not allow the command; nothing was written.")
class InvalidTransition(CommandError):
    """The order's status does not allow the command; nothing was written."""

    status: OrderStatusGQL = strawberry.field(description="The order's current status.")


@strawberry.type(description="The order is not at the expected version; nothing was written.")
class ConcurrencyConflict(CommandError):
    """The order is not at the expected version; nothing was written."""

    expected_version: int = strawberry.field(description="The version the command expected.")
    actual_version: int = strawberry.field(description="The order's version when it was checked.")


CommandErrorType = (
    ValidationFailed | OrderNotFound | OrderAlreadyExists | InvalidTransition | ConcurrencyConflict
)


def from_domain(error: domain.DomainError) -> CommandErrorType:
    """The GraphQL type of a domain refusal."""
    match error:
        case domain.ValidationFailed():
            return ValidationFailed(
                code=ErrorCode.VALIDATION_FAILED, message=error.message, field=error.field
            )
        case domain.OrderNotFound():
            return OrderNotFound(
                code=ErrorCode.ORDER_NOT_FOUND,
                message=error.message,
                order_id=strawberry.ID(error.order_id),
            )
        case domain.OrderAlreadyExists():
            return OrderAlreadyExists(
                code=ErrorCode.ORDER_ALREADY_EXISTS,
                message=error.message,
                order_id=strawberry.ID(error.order_id),
            )
        case domain.InvalidTransition():
            return InvalidTransition(
                code=ErrorCode.INVALID_TRANSITION,
                message=error.message,
                status=OrderStatusGQL(error.status.value),
            )
        case domain.ConcurrencyConflict():
            return ConcurrencyConflict(
                code=ErrorCode.CONCURRENCY_CONFLICT,
                message=error.message,
                expected_version=error.expected_version,
                actual_version=error.actual_version,
            )
    raise TypeError(f"no GraphQL type for {type(error).__name__}")
