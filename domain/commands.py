"""What a caller can ask of an order: one frozen value per mutation of the contract.

Commands carry raw input; `domain.validation` checks and normalises them before any rule runs.
`expectedVersion` is not here: it is the command handler's business (optimistic concurrency),
not a domain decision. `by_customer` on a command about an existing order names the customer who
asks (None: staff or the system, who may act on any order): a customer acts only on its own
orders, and `decide` enforces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from domain.events import LineItem


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder:
    """Open a new order; the handler fills `order_id` with a UUID when the caller gave none."""

    order_id: str
    customer_id: str
    items: tuple[LineItem, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TakePayment:
    """Record the payment of a pending order's full total."""

    order_id: str
    amount: Decimal
    method: str
    transaction_id: str
    by_customer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipOrder:
    """Hand a paid order to a carrier."""

    order_id: str
    tracking_id: str
    carrier: str
    by_customer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOrder:
    """Cancel an order that has not shipped."""

    order_id: str
    reason: str
    by_customer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AddItem:
    """Add a product line to a pending order."""

    order_id: str
    item: LineItem
    by_customer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveItem:
    """Remove a product line from a pending order."""

    order_id: str
    product_id: str
    by_customer: str | None = None


Command = PlaceOrder | TakePayment | ShipOrder | CancelOrder | AddItem | RemoveItem
"""Everything a caller can ask of an order."""
