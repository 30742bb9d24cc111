"""The ways a command can be refused: the `CommandError` members of the contract's `CommandResult`.

Each error carries exactly the fields its GraphQL type exposes, plus `code` (the contract's
`ErrorCode` name) so the API layer can map them without a lookup table of its own.
"""

from __future__ import annotations

from typing import ClassVar

from domain.events import OrderStatus


class DomainError(Exception):
    """A command refused for a reason the caller can act on; never an unexpected failure."""

    code: ClassVar[str] = "DOMAIN_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(DomainError):
    """The input itself is bad, whatever the order's state; `field` is its input path."""

    code: ClassVar[str] = "VALIDATION_FAILED"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class OrderNotFound(DomainError):
    """The command names an order that has no events."""

    code: ClassVar[str] = "ORDER_NOT_FOUND"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} does not exist")
        self.order_id = order_id


class OrderAlreadyExists(DomainError):
    """`placeOrder` with the id of an order that has already been placed."""

    code: ClassVar[str] = "ORDER_ALREADY_EXISTS"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} already exists")
        self.order_id = order_id


class InvalidTransition(DomainError):
    """A rule of the order's life refuses the command in its current `status`."""

    code: ClassVar[str] = "INVALID_TRANSITION"

    def __init__(self, status: OrderStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class ConcurrencyConflict(DomainError):
    """The order moved on since it was read; raised by the command handler, never by `decide`."""

    code: ClassVar[str] = "CONCURRENCY_CONFLICT"

    def __init__(self, expected_version: int, actual_version: int) -> None:
        super().__init__(
            f"expected the order at version {expected_version}, but it is at {actual_version}"
        )
        self.expected_version = expected_version
        self.actual_version = actual_version


class NotOrderOwner(Exception):
    """A customer's command on an order another customer placed.

    Not a `DomainError`: the contract answers it as an access refusal (the top-level `FORBIDDEN`
    error), never as a `CommandResult` member, and it says nothing about the order's state.
    """

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} belongs to another customer")
        self.order_id = order_id
