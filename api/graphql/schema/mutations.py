"""The six commands. Resolvers stay thin: input -> command -> handler -> result type."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.context import AppContext
from api.graphql.permissions import IsStaff, OwnsOrder, PlacesForSelf, SignedIn, acting_customer
from api.graphql.schema.arguments import given
from api.graphql.schema.errors import from_domain
from api.graphql.schema.inputs import (
    AddItemInput,
    CancelOrderInput,
    PlaceOrderInput,
    RemoveItemInput,
    ShipOrderInput,
    TakePaymentInput,
)
from api.graphql.schema.results import CommandAccepted, CommandResult
from api.http.auth import Forbidden
from domain.commands import Command
from domain.errors import DomainError, NotOrderOwner

IdempotencyKey = Annotated[
    str | None,
    strawberry.argument(
        description=(
            "Makes retries safe: the same key returns the original result and writes nothing."
        )
    ),
]


async def execute(
    info: Info[AppContext, None],
    command: Command,
    *,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> CommandResult:
    """Run `command` through the handler; domain refusals become their union members, and a
    customer's command on another customer's order the top-level `FORBIDDEN` error."""
    context = info.context
    expected_version, idempotency_key = given(expected_version), given(idempotency_key)
    try:
        accepted = await context.handler.handle(
            command,
            expected_version=expected_version,
            actor=context.actor,
            correlation_id=context.correlation_id,
            idempotency_key=idempotency_key,
        )
    except DomainError as error:
        return from_domain(error)
    except NotOrderOwner:
        raise Forbidden(OwnsOrder.message) from None
    return CommandAccepted.of(accepted)


@strawberry.type
class CommandMutation:
    """The write side: every change to an order is one of these commands."""

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Place a new order for a customer.", permission_classes=[PlacesForSelf]
    )
    async def place_order(
        self,
        info: Info[AppContext, None],
        input: PlaceOrderInput,
        idempotency_key: IdempotencyKey = strawberry.UNSET,
    ) -> CommandResult:
        """Place a new order for a customer."""
        key = given(idempotency_key)
        given_id = given(input.order_id)
        # Only an omitted id is the server's to make: an empty one is bad input.
        order_id = (
            info.context.handler.new_order_id(str(input.customer_id), key)
            if given_id is None
            else given_id
        )
        return await execute(info, input.to_command(str(order_id)), idempotency_key=key)

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Take the payment of a pending order's total.", permission_classes=[IsStaff]
    )
    async def take_payment(
        self, info: Info[AppContext, None], input: TakePaymentInput
    ) -> CommandResult:
        """Take the payment of a pending order's total."""
        return await execute(info, input.to_command(), expected_version=input.expected_version)

    @strawberry.mutation(description="Ship a paid order.", permission_classes=[IsStaff])  # type: ignore[untyped-decorator]
    async def ship_order(
        self, info: Info[AppContext, None], input: ShipOrderInput
    ) -> CommandResult:
        """Ship a paid order."""
        return await execute(info, input.to_command(), expected_version=input.expected_version)

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Cancel an order that has not shipped.", permission_classes=[SignedIn]
    )
    async def cancel_order(
        self, info: Info[AppContext, None], input: CancelOrderInput
    ) -> CommandResult:
        """Cancel an order that has not shipped."""
        command = replace(input.to_command(), by_customer=acting_customer(info.context.principal))
        return await execute(info, command, expected_version=input.expected_version)

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Add a product line to a pending order.", permission_classes=[IsStaff]
    )
    async def add_item(self, info: Info[AppContext, None], input: AddItemInput) -> CommandResult:
        """Add a product line to a pending order."""
        return await execute(info, input.to_command(), expected_version=input.expected_version)

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Remove a product line from a pending order.", permission_classes=[IsStaff]
    )
    async def remove_item(
        self, info: Info[AppContext, None], input: RemoveItemInput
    ) -> CommandResult:
        """Remove a product line from a pending order."""
        return await execute(info, input.to_command(), expected_version=input.expected_version)
