"""The benchmark's baseline: the same stack serving mutations that do nothing.

Same view class, extensions, scalars, context building and auth as the public app; placeOrder,
takePayment and shipOrder take the same arguments and return the same `CommandResult`, but return
a fixed `CommandAccepted` without touching the event store. Not part of the public schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import strawberry
from starlette.applications import Starlette
from strawberry.tools import merge_types
from strawberry.types import Info

from api.graphql.context import AppContext
from api.graphql.schema import QUERY_PARTS, make_schema
from api.graphql.schema.inputs import PlaceOrderInput, ShipOrderInput, TakePaymentInput
from api.graphql.schema.mutations import IdempotencyKey
from api.graphql.schema.results import CommandAccepted, CommandResult
from api.http.logs import configure_logging
from api.settings.config import Settings
from api.wiring.app import create_app
from api.wiring.cli import serve
from application.written import WrittenOrder
from domain.events import LineItem, OrderStatus
from domain.order import OrderState

_PLACED_AT = datetime(2026, 1, 1, tzinfo=UTC)
_ACCEPTED = CommandAccepted(
    order_id=strawberry.ID("baseline"),
    version=1,
    position="0",
    event_ids=[strawberry.ID("00000000-0000-0000-0000-000000000000")],
    written=WrittenOrder(
        state=OrderState(
            id="baseline",
            customer_id="baseline",
            status=OrderStatus.PENDING,
            items=(LineItem(product_id="p", name="P", price=Decimal("1.00"), qty=1),),
            total=Decimal("1.00"),
            version=1,
        ),
        placed_at=_PLACED_AT,
        updated_at=_PLACED_AT,
    ),
)


@strawberry.type(description="No-op twins of the write side's mutations.")
class NoopMutation:
    """No-op twins of the write side's mutations."""

    @strawberry.mutation(description="Does nothing.")  # type: ignore[untyped-decorator]
    async def place_order(
        self,
        info: Info[AppContext, None],
        input: PlaceOrderInput,
        idempotency_key: IdempotencyKey = strawberry.UNSET,
    ) -> CommandResult:
        """Does nothing."""
        return _ACCEPTED

    @strawberry.mutation(description="Does nothing.")  # type: ignore[untyped-decorator]
    async def take_payment(
        self, info: Info[AppContext, None], input: TakePaymentInput
    ) -> CommandResult:
        """Does nothing."""
        return _ACCEPTED

    @strawberry.mutation(description="Does nothing.")  # type: ignore[untyped-decorator]
    async def ship_order(
        self, info: Info[AppContext, None], input: ShipOrderInput
    ) -> CommandResult:
        """Does nothing."""
        return _ACCEPTED


def noop_schema() -> strawberry.Schema:
    """The public queries with the no-op mutations."""
    return make_schema(query=merge_types("Query", QUERY_PARTS), mutation=NoopMutation)


def noop_app_from_env() -> Starlette:
    """Zero-argument factory for uvicorn (`--factory scripts.baseline:noop_app_from_env`)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings, noop_schema(), tune_gc=True)


def main() -> None:
    """`python -m scripts.baseline`: the no-op schema served as `orders serve --no-projectors`
    serves the public one (its HTTP protocol with read deadlines and connection caps, the
    draining server, the settings from the environment), so the write benchmark's ratio is the
    commands' cost alone. No projectors: nothing is ever appended for them to apply."""
    serve(Settings.from_env(), projectors=0, schema=noop_schema())


if __name__ == "__main__":
    main()
