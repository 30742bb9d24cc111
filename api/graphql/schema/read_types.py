"""Output types of the read model: the order view, pages of orders, stats, projection statuses.

Each type is built from a frozen value of `projections.views` by its `of` classmethod; the only
field that does I/O is `Order.history`, which reads the event store, not Redis.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.context import AppContext
from api.graphql.parked_events import PROJECTION_GROUPS
from api.graphql.permissions import IsStaff
from api.graphql.schema.arguments import (
    MAX_EVENT_PAGE,
    EventPageSize,
    FromVersion,
    non_negative,
    page_size,
)
from api.graphql.schema.line_items import LineItemGQL
from api.graphql.schema.parked import (
    MAX_PARKED_PAGE,
    PARKED_PAGE,
    ParkedEventGQL,
    parked_events,
    parked_page_size,
)
from api.graphql.schema.types import Event, OrderStatusGQL, PageInfo
from application.written import WrittenOrder
from projections.views import DashboardStats, OrderPage, OrderView, ProjectionStatus, StatusStats

HISTORY_PAGE = 100
"""The events `Order.history` answers when `first` is not given."""


@strawberry.type(name="Order", description="The order as the read model (Redis) holds it.")
class OrderGQL:
    """The order as the read model (Redis) holds it."""

    id: strawberry.ID = strawberry.field(description="The order's id.")
    customer_id: strawberry.ID = strawberry.field(description="Who placed the order.")
    status: OrderStatusGQL = strawberry.field(description="Where the order is in its life.")
    items: list[LineItemGQL] = strawberry.field(description="Its product lines.")
    item_count: int = strawberry.field(
        description="How many units it holds: the sum of the lines' quantities."
    )
    total: Decimal = strawberry.field(description="The sum of price times qty over its lines.")
    tracking_id: str | None = strawberry.field(description="The tracking id, once shipped.")
    carrier: str | None = strawberry.field(description="The carrier, once shipped.")
    created_at: datetime = strawberry.field(description="When it was placed.")
    updated_at: datetime = strawberry.field(description="When its last event happened.")
    version: int = strawberry.field(
        description="The number of its events the view reflects (compare with minVersion)."
    )
    position: str = strawberry.field(
        description="The log position of the last event the view reflects, a decimal string."
    )

    @strawberry.field(  # type: ignore[untyped-decorator]
        description=(
            "The raw events of this order, oldest first, from the event store: at most `first` "
            f"(default {HISTORY_PAGE}, at most {MAX_EVENT_PAGE}) after `fromVersion`; page on with "
            "the last event's version."
        )
    )
    async def history(
        self,
        info: Info[AppContext, None],
        from_version: FromVersion = 0,
        first: EventPageSize = HISTORY_PAGE,
    ) -> list[Event]:
        """The order's events with version > fromVersion, upcast to the current schema, oldest
        first; bounded like every list, so one query cannot pull a whole long stream per
        order."""
        page = await info.context.repository.history(
            str(self.id),
            from_version=non_negative(from_version, "fromVersion"),
            limit=page_size(first, default=HISTORY_PAGE),
        )
        return [Event.of(decoded) for decoded in page]

    @classmethod
    def written(cls, order: WrittenOrder, *, position: int) -> OrderGQL:
        """The GraphQL view of an order as a command left it (`position`: its last event's),
        field for field what the view will hold once projected."""
        state = order.state
        assert order.placed_at is not None, "the caller reads the placement when unknown"
        return cls(
            id=strawberry.ID(state.id),
            customer_id=strawberry.ID(state.customer_id),
            status=OrderStatusGQL(state.status.value),
            items=[LineItemGQL.of(item) for item in state.items],
            item_count=sum(item.qty for item in state.items),
            total=state.total,
            tracking_id=state.tracking_id,
            carrier=state.carrier,
            created_at=order.placed_at,
            updated_at=order.updated_at,
            version=state.version,
            position=str(position),
        )

    @classmethod
    def of(cls, view: OrderView) -> OrderGQL:
        """The GraphQL view of an order view."""
        return cls(
            id=strawberry.ID(view.id),
            customer_id=strawberry.ID(view.customer_id),
            status=OrderStatusGQL(view.status.value),
            items=[LineItemGQL.of(item) for item in view.items],
            item_count=view.item_count,
            total=view.total,
            tracking_id=view.tracking_id,
            carrier=view.carrier,
            created_at=view.created_at,
            updated_at=view.updated_at,
            version=view.version,
            position=str(view.position),
        )


@strawberry.type(description="One order of a page, with its cursor.")
class OrderEdge:
    """One order of a page, with its cursor."""

    cursor: str = strawberry.field(description="Pass as `after` to continue after this order.")
    node: OrderGQL = strawberry.field(description="The order.")


@strawberry.type(description="A page of orders, newest first.")
class OrderConnection:
    """A page of orders, newest first."""

    edges: list[OrderEdge] = strawberry.field(description="The orders of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page starts and ends.")
    total_count: int = strawberry.field(
        description=(
            "How many orders match the filter now, over all pages (the customer's and/or the "
            "status's orders in the read model; every order without a filter)."
        )
    )

    @classmethod
    def of(cls, page: OrderPage) -> OrderConnection:
        """The GraphQL view of a page of order views."""
        return cls(
            edges=[
                OrderEdge(cursor=cursor, node=OrderGQL.of(view))
                for cursor, view in zip(page.cursors, page.orders, strict=True)
            ],
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=page.start_cursor,
                end_cursor=page.end_cursor,
            ),
            total_count=page.total_count,
        )


@strawberry.type(name="StatusStats", description="The orders now in one status.")
class StatusStatsGQL:
    """The orders now in one status."""

    status: OrderStatusGQL = strawberry.field(description="The status.")
    count: int = strawberry.field(description="How many orders are in it now.")
    revenue: Decimal = strawberry.field(description="The sum of the totals of those orders.")

    @classmethod
    def of(cls, stats: StatusStats) -> StatusStatsGQL:
        """The GraphQL view of one status's stats."""
        return cls(
            status=OrderStatusGQL(stats.status.value),
            count=stats.count,
            revenue=stats.revenue,
        )


@strawberry.type(name="DashboardStats", description="Totals over all orders, from the read model.")
class DashboardStatsGQL:
    """Totals over all orders, from the read model."""

    total_orders: int = strawberry.field(description="How many orders were ever placed.")
    by_status: list[StatusStatsGQL] = strawberry.field(
        description="Count and revenue per status, one entry for every status."
    )
    position: str = strawberry.field(
        description="The highest log position the stats reflect, a decimal string."
    )

    @classmethod
    def of(cls, stats: DashboardStats) -> DashboardStatsGQL:
        """The GraphQL view of the dashboard's stats."""
        return cls(
            total_orders=stats.total_orders,
            by_status=[StatusStatsGQL.of(s) for s in stats.by_status],
            position=str(stats.position),
        )


@strawberry.type(name="ProjectionStatus", description="How far one projection has got.")
class ProjectionStatusGQL:
    """How far one projection has got."""

    name: str = strawberry.field(description='The projection, e.g. "orders".')
    position: str | None = strawberry.field(
        description="The log position its views reflect (a decimal string); null before any."
    )
    lag: int = strawberry.field(
        description=(
            "Events in the log after that position (counted up to 10,000); -1 while the "
            "projector cannot read the log, so its lag is unknown."
        )
    )
    state: str = strawberry.field(
        description="running, catching-up, error or stopped (the most severe over its workers)."
    )
    parked: int = strawberry.field(description="Events parked after failing too often.")
    last_error: str | None = strawberry.field(description="The last error a worker hit, if any.")
    group: str | None = strawberry.field(
        description=(
            "The persistent-subscription group its workers share: what `orders parked list` "
            "and `orders parked replay` take."
        )
    )

    @strawberry.field(  # type: ignore[untyped-decorator]
        description=(
            f"The events its group parked, oldest first: at most `first` (default {PARKED_PAGE}, "
            f"at most {MAX_PARKED_PAGE}); `parked` counts them all. Read from the event store, "
            "so they are there as soon as parked. Staff only."
        ),
        permission_classes=[IsStaff],
    )
    async def parked_events(
        self,
        info: Info[AppContext, None],
        first: Annotated[
            int | None, strawberry.argument(description="At most this many events.")
        ] = PARKED_PAGE,
    ) -> list[ParkedEventGQL]:
        """The group's parked events, from the event store."""
        return await parked_events(info.context.store, self.group, parked_page_size(first))

    @classmethod
    def of(cls, status: ProjectionStatus) -> ProjectionStatusGQL:
        """The GraphQL view of a projection's status."""
        return cls(
            name=status.name,
            position=None if status.position is None else str(status.position),
            lag=status.lag,
            state=status.state,
            parked=status.parked,
            last_error=status.last_error,
            group=PROJECTION_GROUPS.get(status.name),
        )
