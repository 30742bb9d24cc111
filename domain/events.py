"""The six facts an order can record, as frozen values.

Field names are Pythonic here; the codec (`application.codec`) owns the camelCase wire format of
CONTRACT section 1. Money is `Decimal` throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class OrderStatus(StrEnum):
    """Where an order is in its life."""

    PENDING = "PENDING"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True, kw_only=True)
class LineItem:
    """One product line of an order."""

    product_id: str
    name: str
    price: Decimal
    qty: int

    @property
    def subtotal(self) -> Decimal:
        return self.price * self.qty


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlaced:
    order_id: str
    customer_id: str
    items: tuple[LineItem, ...]
    total: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentTaken:
    amount: Decimal
    method: str
    transaction_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderShipped:
    tracking_id: str
    carrier: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelled:
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemAdded:
    item: LineItem
    total: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemRemoved:
    product_id: str
    total: Decimal


OrderEvent = OrderPlaced | PaymentTaken | OrderShipped | OrderCancelled | ItemAdded | ItemRemoved
"""Everything that can happen to an order."""

EVENT_TYPES: tuple[type[OrderEvent], ...] = (
    OrderPlaced,
    PaymentTaken,
    OrderShipped,
    OrderCancelled,
    ItemAdded,
    ItemRemoved,
)
EVENT_TYPE_NAMES: frozenset[str] = frozenset(t.__name__ for t in EVENT_TYPES)

ORDER_STREAM_PREFIX = "order-"


def order_stream(order_id: str) -> str:
    """The stream that holds one order's events (CONTRACT section 1)."""
    return f"{ORDER_STREAM_PREFIX}{order_id}"


def order_id_of(stream: str) -> str:
    """The order id of an `order-{id}` stream name."""
    if not stream.startswith(ORDER_STREAM_PREFIX):
        raise ValueError(f"not an order stream: {stream!r}")
    return stream[len(ORDER_STREAM_PREFIX) :]
