"""The line item type: one product line, as orders, folded states and event payloads show it."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from domain.events import LineItem as DomainLineItem


@strawberry.type(name="LineItem", description="One product line of an order.")
class LineItemGQL:
    """One product line of an order."""

    product_id: strawberry.ID = strawberry.field(description="The product's id.")
    name: str = strawberry.field(description="The product's name when it was ordered.")
    price: Decimal = strawberry.field(description="The unit price.")
    qty: int = strawberry.field(description="How many units.")

    @classmethod
    def of(cls, item: DomainLineItem) -> LineItemGQL:
        """The GraphQL view of a domain line item."""
        return cls(
            product_id=strawberry.ID(item.product_id),
            name=item.name,
            price=item.price,
            qty=item.qty,
        )
