"""Queries and live subscriptions of the read model: orders, stats and projection statuses.

Thin resolvers over `projections.queries.OrderQueries` (from `info.context.queries`): check the
arguments, read the views in Redis, wrap the frozen values in GraphQL types. Access follows
CONTRACT "Access": customers read and watch their own orders; stats and statuses are staff's.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.context import AppContext
from api.graphql.permissions import (
    IsStaff,
    OwnsExistingOrder,
    OwnsOrder,
    ReadsOwnOrders,
    WatchesOwnOrders,
    ensure_owner,
    visible_customer,
)
from api.graphql.schema.arguments import OrderIdArgument, given, non_negative, order_id_argument
from api.graphql.schema.errors import BadUserInput
from api.graphql.schema.read_types import (
    DashboardStatsGQL,
    OrderConnection,
    OrderGQL,
    ProjectionStatusGQL,
)
from api.graphql.schema.types import OrderStatusGQL
from domain.events import OrderStatus
from projections.queries import MAX_VIEW_PAGE, InvalidCursor

MIN_VERSION_WAIT = 2.0
"""Seconds `order(minVersion)` waits for the view to catch up before answering what it has."""


def _status(value: OrderStatusGQL | None) -> OrderStatus | None:
    return None if value is None else OrderStatus[value.name]


def _orders_page_size(value: int | None) -> int:
    first = given(value)
    if first is None:
        return 20
    if not 0 <= first <= MAX_VIEW_PAGE:
        raise BadUserInput(f"first must be between 0 and {MAX_VIEW_PAGE}", "first")
    return first


CustomerArg = Annotated[
    strawberry.ID | None, strawberry.argument(description="Only this customer's orders.")
]
StatusArg = Annotated[
    OrderStatusGQL | None, strawberry.argument(description="Only orders in this status.")
]


@strawberry.type
class ReadModelQuery:
    """Reads of the read model (Redis): fast, and at most a moment behind the log."""

    @strawberry.field(  # type: ignore[untyped-decorator]
        description=(
            "From the read model. With minVersion, waits (bounded, about 2 s) until the view has "
            "caught up."
        ),
        permission_classes=[OwnsOrder],
    )
    async def order(
        self,
        info: Info[AppContext, None],
        id: OrderIdArgument,
        min_version: Annotated[
            int | None,
            strawberry.argument(
                description="Wait until the view reflects at least this version (read your write)."
            ),
        ] = strawberry.UNSET,
    ) -> OrderGQL | None:
        """The order's view, or null if the read model holds no such order."""
        order_id = order_id_argument(id)
        minimum = non_negative(min_version, "minVersion")
        queries = info.context.queries
        if minimum > 0:
            view = await queries.wait_for_version(order_id, minimum, wait=MIN_VERSION_WAIT)
        else:
            view = await queries.get_order(order_id)
        if view is None:
            await queries.ensure_not_behind()  # null only from views known to be current
            return None
        # The order may have been placed (by another customer) after the permission saw none.
        ensure_owner(info.context.principal, view.customer_id)
        return OrderGQL.of(view)

    @strawberry.field(  # type: ignore[untyped-decorator]
        description=(
            "Newest first. Filters combine. A customer sees its own orders only (with or without "
            "customerId)."
        ),
        permission_classes=[ReadsOwnOrders],
    )
    async def orders(
        self,
        info: Info[AppContext, None],
        customer_id: CustomerArg = strawberry.UNSET,
        status: StatusArg = strawberry.UNSET,
        first: Annotated[
            int | None, strawberry.argument(description=f"At most this many (0..{MAX_VIEW_PAGE}).")
        ] = 20,
        after: Annotated[
            str | None,
            strawberry.argument(description="Continue after this cursor (a page's endCursor)."),
        ] = strawberry.UNSET,
    ) -> OrderConnection:
        """A page of orders, newest first."""
        requested = given(customer_id)
        cursor = given(after)
        if cursor is not None and not cursor.isascii():
            # Cursors are base64 text; anything else is not one of ours (and not decodable).
            raise BadUserInput("after is not a cursor of this list", "after")
        try:
            page = await info.context.queries.list_orders(
                customer_id=visible_customer(
                    info.context.principal, None if requested is None else str(requested)
                ),
                status=_status(given(status)),
                first=_orders_page_size(first),
                after=cursor,
            )
        except InvalidCursor:
            raise BadUserInput("after is not a cursor of this list", "after") from None
        return OrderConnection.of(page)

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="Order count, and count and revenue per status, from the read model.",
        permission_classes=[IsStaff],
    )
    async def dashboard_stats(self, info: Info[AppContext, None]) -> DashboardStatsGQL:
        """The dashboard's stats."""
        return DashboardStatsGQL.of(await info.context.queries.dashboard_stats())

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="Each projection's position, lag, state, parked events and last error.",
        permission_classes=[IsStaff],
    )
    async def projections(self, info: Info[AppContext, None]) -> list[ProjectionStatusGQL]:
        """The projections' statuses as their workers last recorded them."""
        statuses = await info.context.queries.projection_statuses()
        return [ProjectionStatusGQL.of(status) for status in statuses]


@strawberry.type
class ReadModelSubscription:
    """Live views, pushed as the projectors change them."""

    @strawberry.subscription(  # type: ignore[untyped-decorator]
        description=(
            "The current view first (if the order exists), then the view after every projected "
            "change."
        ),
        permission_classes=[OwnsExistingOrder],
    )
    async def order_updated(
        self,
        info: Info[AppContext, None],
        id: OrderIdArgument,
    ) -> AsyncGenerator[OrderGQL, None]:
        """One order's view, now and after every change."""
        order_id = order_id_argument(id)
        async with aclosing(info.context.queries.watch_order(order_id)) as views:
            async for view in views:
                yield OrderGQL.of(view)

    @strawberry.subscription(  # type: ignore[untyped-decorator]
        description=(
            "Every projected change of an order that matches the filter before or after the "
            "change: an order that leaves a status filter is pushed once more, with its new "
            "status, so a live list can drop it. A customer without customerId gets its own "
            "orders (as the orders query does)."
        ),
        permission_classes=[WatchesOwnOrders],
    )
    async def orders_updated(
        self,
        info: Info[AppContext, None],
        customer_id: CustomerArg = strawberry.UNSET,
        status: StatusArg = strawberry.UNSET,
    ) -> AsyncGenerator[OrderGQL, None]:
        """The view of every order changed from now on that passes the filters before or after
        the change."""
        requested = given(customer_id)
        watch = info.context.queries.watch_orders(
            customer_id=visible_customer(
                info.context.principal, None if requested is None else str(requested)
            ),
            status=_status(given(status)),
        )
        async with aclosing(watch) as views:
            async for view in views:
                yield OrderGQL.of(view)

    @strawberry.subscription(  # type: ignore[untyped-decorator]
        description=(
            "The current stats first, then after changes (coalesced, at most about 10 a second)."
        ),
        permission_classes=[IsStaff],
    )
    async def dashboard_stats(
        self, info: Info[AppContext, None]
    ) -> AsyncGenerator[DashboardStatsGQL, None]:
        """The dashboard's stats, now and after changes."""
        async with aclosing(info.context.queries.watch_stats()) as stats:
            async for current in stats:
                yield DashboardStatsGQL.of(current)
