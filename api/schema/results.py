"""The outcome of a command: `CommandAccepted`, or one of the typed refusals."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.schema.errors import (
    ConcurrencyConflict,
    InvalidTransition,
    OrderAlreadyExists,
    OrderNotFound,
    ValidationFailed,
)
from application.handler import Accepted


@strawberry.type(
    description=(
        "Success: the events are durably appended. The read model follows shortly; "
        "pass `version` as minVersion to read your write."
    )
)
class CommandAccepted:
    """Success: the events are durably appended."""

    order_id: strawberry.ID = strawberry.field(description="The order the command acted on.")
    version: int = strawberry.field(description="The order's version after the command.")
    position: str = strawberry.field(
        description="The commit position of the command's last event, as a decimal string."
    )
    event_ids: list[strawberry.ID] = strawberry.field(
        description="The ids of the events the command recorded."
    )

    @classmethod
    def of(cls, accepted: Accepted) -> CommandAccepted:
        """The GraphQL view of the handler's result."""
        return cls(
            order_id=strawberry.ID(accepted.order_id),
            version=accepted.version,
            position=str(accepted.position),
            event_ids=[strawberry.ID(str(i)) for i in accepted.event_ids],
        )


CommandResult = Annotated[
    CommandAccepted
    | ValidationFailed
    | OrderNotFound
    | OrderAlreadyExists
    | InvalidTransition
    | ConcurrencyConflict,
    strawberry.union(
        "CommandResult",
        description="A command's outcome: accepted, or refused with a typed reason.",
    ),
]
