"""Output types of the event log and the write side: events, pages of them, folded order states."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.graphql.schema.line_items import LineItemGQL
from api.graphql.schema.payloads import EventPayload, payload_of
from api.graphql.visibility import visible_data, visible_metadata
from api.http.auth import Principal
from application.codec import DecodedEvent
from domain.events import OrderEvent
from domain.order import OrderState as DomainOrderState


@strawberry.enum(name="OrderStatus", description="Where an order is in its life.")
class OrderStatusGQL(enum.Enum):
    """Where an order is in its life (mirrors `domain.events.OrderStatus`)."""

    PENDING = strawberry.enum_value("PENDING", description="Placed, not yet paid.")
    PAID = strawberry.enum_value("PAID", description="Paid, not yet shipped.")
    SHIPPED = strawberry.enum_value("SHIPPED", description="Handed to a carrier.")
    CANCELLED = strawberry.enum_value("CANCELLED", description="Cancelled before shipping.")


@strawberry.type(
    name="OrderState",
    description="An order's state folded from its events (the write side), for time travel.",
)
class OrderStateGQL:
    """An order's state folded from its events (the write side), for time travel."""

    id: strawberry.ID = strawberry.field(description="The order's id.")
    customer_id: strawberry.ID = strawberry.field(description="Who placed the order.")
    status: OrderStatusGQL = strawberry.field(description="Its status at that point.")
    items: list[LineItemGQL] = strawberry.field(description="Its product lines at that point.")
    total: Decimal = strawberry.field(description="Its total at that point.")
    tracking_id: str | None = strawberry.field(description="The tracking id, once shipped.")
    carrier: str | None = strawberry.field(description="The carrier, once shipped.")
    version: int = strawberry.field(description="The number of events folded.")
    as_of: datetime | None = strawberry.field(
        description="The moment asked for, when the state was asked as of a moment."
    )

    @classmethod
    def of(cls, state: DomainOrderState, *, version: int, as_of: datetime | None) -> OrderStateGQL:
        """The GraphQL view of a folded state."""
        return cls(
            id=strawberry.ID(state.id),
            customer_id=strawberry.ID(state.customer_id),
            status=OrderStatusGQL(state.status.value),
            items=[LineItemGQL.of(item) for item in state.items],
            total=state.total,
            tracking_id=state.tracking_id,
            carrier=state.carrier,
            version=version,
            as_of=as_of,
        )


@strawberry.type(description="An event as the event store holds it, upcast to the current schema.")
class Event:
    """An event as the event store holds it, upcast to the current schema."""

    id: strawberry.ID = strawberry.field(description="The event's UUID.")
    stream_id: str = strawberry.field(description="The stream it belongs to: order-{orderId}.")
    type: str = strawberry.field(description="The event type, e.g. OrderPlaced.")
    version: int = strawberry.field(description="The order's version after this event.")
    position: str = strawberry.field(
        description="Its commit position in the global log ($all), as a decimal string."
    )
    occurred_at: datetime = strawberry.field(description="When it happened (metadata occurredAt).")
    stored_data: strawberry.Private[dict[str, Any]]
    stored_metadata: strawberry.Private[dict[str, Any]]
    stored_event: strawberry.Private[OrderEvent | None]

    @strawberry.field(  # type: ignore[untyped-decorator]
        description=(
            "Its data, always in the current schema. A customer sees a cancellation reason "
            "written by staff as a neutral one."
        )
    )
    def data(self, info: Info[Any, None]) -> JSON:
        """The data as the caller may see it (`api.graphql.visibility`)."""
        return JSON(visible_data(self.type, self.stored_data, self.stored_metadata, _viewer(info)))

    @strawberry.field(  # type: ignore[untyped-decorator]
        description=(
            "The same data, typed: one member per event type (OrderPlacedData, "
            "PaymentTakenData, ...), so code generators give clients real types."
        )
    )
    def payload(self, info: Info[Any, None]) -> EventPayload:
        """The upcast event as its typed union member, as the caller may see it."""
        visible = visible_data(self.type, self.stored_data, self.stored_metadata, _viewer(info))
        return payload_of(self.stored_event, visible)

    @strawberry.field(  # type: ignore[untyped-decorator]
        description=(
            "Its metadata (schemaVersion, occurredAt, $correlationId, $causationId, actor). A "
            'customer sees the actor "staff" for anyone but itself and the system.'
        )
    )
    def metadata(self, info: Info[Any, None]) -> JSON:
        """The metadata as the caller may see it (`api.graphql.visibility`)."""
        return JSON(visible_metadata(self.stored_metadata, _viewer(info)))

    @classmethod
    def of(cls, decoded: DecodedEvent) -> Event:
        """The GraphQL view of a decoded event."""
        record = decoded.record
        return cls(
            id=strawberry.ID(str(record.id)),
            stream_id=record.stream,
            type=record.type,
            version=record.version,
            position=str(record.position),
            occurred_at=decoded.occurred_at,
            stored_data=decoded.data,
            stored_metadata=decoded.metadata,
            stored_event=decoded.event,
        )


def _viewer(info: Info[Any, None]) -> Principal | None:
    principal: Principal | None = getattr(info.context, "principal", None)
    return principal


@strawberry.type(description="Where a page ends and whether more follows.")
class PageInfo:
    """Where a page ends and whether more follows."""

    has_next_page: bool = strawberry.field(description="Whether more items follow this page.")
    has_previous_page: bool = strawberry.field(
        description=(
            "Whether items come before this page: false on a first page (no `after`), else "
            "whether the list holds any item at or before the `after` cursor."
        )
    )
    start_cursor: str | None = strawberry.field(
        description="The cursor of this page's first item; null when the page is empty."
    )
    end_cursor: str | None = strawberry.field(
        description="Pass as `after` for the next page; null when the page is empty."
    )


@strawberry.type(description="One event of a page, with its cursor.")
class EventEdge:
    """One event of a page, with its cursor."""

    cursor: str = strawberry.field(description="The event's position: resume after it.")
    node: Event = strawberry.field(description="The event.")


@strawberry.type(description="A page of the global event log.")
class EventConnection:
    """A page of the global event log."""

    edges: list[EventEdge] = strawberry.field(description="The events of this page, oldest first.")
    page_info: PageInfo = strawberry.field(description="Where this page starts and ends.")
