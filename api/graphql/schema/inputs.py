"""Mutation inputs, and how each becomes a domain command (the domain validates the values)."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from domain import commands
from domain.events import LineItem


@strawberry.input(description="A product line to order.")
class LineItemInput:
    """A product line to order."""

    product_id: strawberry.ID = strawberry.field(description="The product's id.")
    name: str = strawberry.field(description="The product's name.")
    price: Decimal = strawberry.field(description="Unit price: >= 0, at most 2 decimal places.")
    qty: int = strawberry.field(description="Units: 1 to 10,000.")

    def to_domain(self) -> LineItem:
        """The domain line item (not yet validated)."""
        return LineItem(
            product_id=str(self.product_id), name=self.name, price=self.price, qty=self.qty
        )


@strawberry.input(description="A new order.")
class PlaceOrderInput:
    """A new order."""

    order_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="The order's id; the server makes a UUID when omitted.",
    )
    customer_id: strawberry.ID = strawberry.field(description="Who orders.")
    items: list[LineItemInput] = strawberry.field(description="1 to 100 product lines.")

    def to_command(self, order_id: str) -> commands.PlaceOrder:
        """The command, with the order id the handler chose when none was given."""
        return commands.PlaceOrder(
            order_id=order_id,
            customer_id=str(self.customer_id),
            items=tuple(item.to_domain() for item in self.items),
        )


@strawberry.input(description="Payment of a pending order's full total.")
class TakePaymentInput:
    """Payment of a pending order's full total."""

    order_id: strawberry.ID = strawberry.field(description="The order to pay.")
    amount: Decimal = strawberry.field(description="Must equal the order's total.")
    method: str = strawberry.field(description="How it was paid, e.g. card.")
    transaction_id: str = strawberry.field(description="The payment provider's reference.")
    expected_version: int | None = strawberry.field(
        default=strawberry.UNSET, description="Refuse unless the order is at this version."
    )

    def to_command(self) -> commands.TakePayment:
        """The domain command."""
        return commands.TakePayment(
            order_id=str(self.order_id),
            amount=self.amount,
            method=self.method,
            transaction_id=self.transaction_id,
        )


@strawberry.input(description="Shipment of a paid order.")
class ShipOrderInput:
    """Shipment of a paid order."""

    order_id: strawberry.ID = strawberry.field(description="The order to ship.")
    tracking_id: str = strawberry.field(description="The carrier's tracking id.")
    carrier: str = strawberry.field(description="Who carries it.")
    expected_version: int | None = strawberry.field(
        default=strawberry.UNSET, description="Refuse unless the order is at this version."
    )

    def to_command(self) -> commands.ShipOrder:
        """The domain command."""
        return commands.ShipOrder(
            order_id=str(self.order_id), tracking_id=self.tracking_id, carrier=self.carrier
        )


@strawberry.input(description="Cancellation of an order that has not shipped.")
class CancelOrderInput:
    """Cancellation of an order that has not shipped."""

    order_id: strawberry.ID = strawberry.field(description="The order to cancel.")
    reason: str = strawberry.field(description="Why it is cancelled.")
    expected_version: int | None = strawberry.field(
        default=strawberry.UNSET, description="Refuse unless the order is at this version."
    )

    def to_command(self) -> commands.CancelOrder:
        """The domain command."""
        return commands.CancelOrder(order_id=str(self.order_id), reason=self.reason)


@strawberry.input(description="A product line added to a pending order.")
class AddItemInput:
    """A product line added to a pending order."""

    order_id: strawberry.ID = strawberry.field(description="The order to amend.")
    item: LineItemInput = strawberry.field(description="The new line; its product must be new.")
    expected_version: int | None = strawberry.field(
        default=strawberry.UNSET, description="Refuse unless the order is at this version."
    )

    def to_command(self) -> commands.AddItem:
        """The domain command."""
        return commands.AddItem(order_id=str(self.order_id), item=self.item.to_domain())


@strawberry.input(description="A product line removed from a pending order.")
class RemoveItemInput:
    """A product line removed from a pending order."""

    order_id: strawberry.ID = strawberry.field(description="The order to amend.")
    product_id: strawberry.ID = strawberry.field(description="The product whose line goes.")
    expected_version: int | None = strawberry.field(
        default=strawberry.UNSET, description="Refuse unless the order is at this version."
    )

    def to_command(self) -> commands.RemoveItem:
        """The domain command."""
        return commands.RemoveItem(order_id=str(self.order_id), product_id=str(self.product_id))
