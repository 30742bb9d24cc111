"""The outcome of a command: `CommandAccepted`, or one of the typed refusals."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.context import AppContext
from api.graphql.schema.errors import (
    ConcurrencyConflict,
    InvalidTransition,
    OrderAlreadyExists,
    OrderNotFound,
    ValidationFailed,
)
from api.graphql.schema.read_types import OrderGQL
from application.handler import Accepted
from application.written import WrittenOrder


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
    written: strawberry.Private[WrittenOrder | None]

    @strawberry.field(  # type: ignore[untyped-decorator]
        description=(
            "The order as this command left it, folded on the write side at `version` (no wait "
            "for the read model): the same type the queries return, so a client cache (Apollo, "
            "urql) updates in place."
        )
    )
    async def order(self, info: Info[AppContext, None]) -> OrderGQL:
        """The order at `version`, as the handler decided it. The stream's first event is read
        only when the handler did not see it: the order's creation time after a load from a
        snapshot, or a keyed placement (which may be an earlier placement's replay)."""
        written = self.written
        if written is None or written.placed_at is None:
            placed = await info.context.repository.placed(str(self.order_id))
            if placed is None or placed.placed_at is None:
                raise LookupError(f"order {self.order_id} has no placement to show")
            if written is None:
                written = placed
            else:
                written = WrittenOrder(
                    state=written.state, placed_at=placed.placed_at, updated_at=written.updated_at
                )
        if written.state.version != self.version:
            raise LookupError(f"order {self.order_id} folded to another version than accepted")
        return OrderGQL.written(written, position=int(self.position))

    @classmethod
    def of(cls, accepted: Accepted) -> CommandAccepted:
        """The GraphQL view of the handler's result."""
        return cls(
            order_id=strawberry.ID(accepted.order_id),
            version=accepted.version,
            position=str(accepted.position),
            event_ids=[strawberry.ID(str(i)) for i in accepted.event_ids],
            written=accepted.order,
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
