"""`Event.payload`: an event's data, typed, one union member per event type.

`Event.data` is JSON, which code generators can only type as `any`; `payload` carries the same
upcast data as typed members, so a client switches on `__typename` and gets real fields. Lines are
the `LineItem` type orders use (`productId`, not the wire's `id`): a type with an `id` field would
be merged across orders by Apollo's and urql's normalised caches, keyed by type and id.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from api.graphql.schema.line_items import LineItemGQL
from domain.events import (
    ItemAdded,
    ItemRemoved,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    PaymentTaken,
)


@strawberry.type(description="The data of an OrderPlaced event: a new order and its lines.")
class OrderPlacedData:
    """The data of an OrderPlaced event."""

    order_id: strawberry.ID = strawberry.field(description="The order's id.")
    customer_id: strawberry.ID = strawberry.field(description="Who placed the order.")
    items: list[LineItemGQL] = strawberry.field(description="The order's lines as placed.")
    total: Decimal = strawberry.field(description="The sum of price times qty, by the server.")


@strawberry.type(description="The data of a PaymentTaken event: the order's total was paid.")
class PaymentTakenData:
    """The data of a PaymentTaken event."""

    amount: Decimal = strawberry.field(description="The amount paid (the order's total).")
    method: str = strawberry.field(description='How it was paid, e.g. "card".')
    transaction_id: str = strawberry.field(description="The payment provider's transaction id.")


@strawberry.type(description="The data of an OrderShipped event: handed to a carrier.")
class OrderShippedData:
    """The data of an OrderShipped event."""

    tracking_id: str = strawberry.field(description="The carrier's tracking id.")
    carrier: str = strawberry.field(description="The carrier.")


@strawberry.type(description="The data of an OrderCancelled event.")
class OrderCancelledData:
    """The data of an OrderCancelled event."""

    reason: str = strawberry.field(
        description=(
            "Why it was cancelled. A customer sees a reason written by staff as a neutral one."
        )
    )


@strawberry.type(description="The data of an ItemAdded event: a line added to a pending order.")
class ItemAddedData:
    """The data of an ItemAdded event."""

    item: LineItemGQL = strawberry.field(description="The line added.")
    total: Decimal = strawberry.field(description="The order's new total.")


@strawberry.type(
    description="The data of an ItemRemoved event: a line removed from a pending order."
)
class ItemRemovedData:
    """The data of an ItemRemoved event."""

    product_id: strawberry.ID = strawberry.field(description="The product whose line was removed.")
    total: Decimal = strawberry.field(description="The order's new total.")


@strawberry.type(
    description=(
        "The data of an event type this server does not know (written to an order stream by "
        "another service), as stored."
    )
)
class UnknownEventData:
    """The data of an event type this server does not know."""

    data: JSON = strawberry.field(description="The event's data as stored.")


EventPayload = Annotated[
    OrderPlacedData
    | PaymentTakenData
    | OrderShippedData
    | OrderCancelledData
    | ItemAddedData
    | ItemRemovedData
    | UnknownEventData,
    strawberry.union(
        "EventPayload",
        description=(
            "An event's data, typed: one member per event type (UnknownEventData for a type "
            "this server does not know). Upcast to the current schema like `data`."
        ),
    ),
]


def payload_of(event: OrderEvent | None, visible: dict[str, Any]) -> EventPayload:
    """The typed payload of an upcast event; `visible` is its data as the caller may see it
    (`api.graphql.visibility`), which decides the only field a viewer may see changed (a reason)."""
    match event:
        case OrderPlaced():
            return OrderPlacedData(
                order_id=strawberry.ID(event.order_id),
                customer_id=strawberry.ID(event.customer_id),
                items=[LineItemGQL.of(item) for item in event.items],
                total=event.total,
            )
        case PaymentTaken():
            return PaymentTakenData(
                amount=event.amount, method=event.method, transaction_id=event.transaction_id
            )
        case OrderShipped():
            return OrderShippedData(tracking_id=event.tracking_id, carrier=event.carrier)
        case OrderCancelled():
            return OrderCancelledData(reason=str(visible.get("reason", event.reason)))
        case ItemAdded():
            return ItemAddedData(item=LineItemGQL.of(event.item), total=event.total)
        case ItemRemoved():
            return ItemRemovedData(product_id=strawberry.ID(event.product_id), total=event.total)
        case None:
            return UnknownEventData(data=JSON(visible))
