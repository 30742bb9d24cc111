"""Unit tests of the pure domain, and the given / when / then vocabulary they share.

given(placed()).when(TakePayment(...)).then(PaymentTaken(...))
given(placed(), paid()).when(ShipOrder(...)).raises(InvalidTransition)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

import pytest

from domain.commands import Command
from domain.decide import decide
from domain.errors import DomainError
from domain.events import (
    LineItem,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    PaymentTaken,
)
from domain.order import OrderState, fold
from domain.validation import validate

E = TypeVar("E", bound=DomainError)

ORDER_ID = "order-1"
CUSTOMER_ID = "customer-1"


def item(
    product_id: str = "p1", price: str = "10.00", qty: int = 1, name: str = "Widget"
) -> LineItem:
    """A line item with money given as text, so tests read like the wire."""
    return LineItem(product_id=product_id, name=name, price=Decimal(price), qty=qty)


def placed(*items: LineItem, order_id: str = ORDER_ID) -> OrderPlaced:
    """`OrderPlaced` with `items` (one 10.00 widget by default) and their true total."""
    lines = items or (item(),)
    return OrderPlaced(
        order_id=order_id,
        customer_id=CUSTOMER_ID,
        items=lines,
        total=sum((line.price * line.qty for line in lines), Decimal("0.00")),
    )


def paid(amount: str = "10.00") -> PaymentTaken:
    """`PaymentTaken` of `amount`."""
    return PaymentTaken(amount=Decimal(amount), method="card", transaction_id="tx-1")


def shipped() -> OrderShipped:
    """`OrderShipped` with a fixed tracking id and carrier."""
    return OrderShipped(tracking_id="TRACK-1", carrier="DHL")


def cancelled() -> OrderCancelled:
    """`OrderCancelled` with a fixed reason."""
    return OrderCancelled(reason="changed my mind")


@dataclass(frozen=True, slots=True)
class When:
    """A command against a given history, waiting for its expected outcome: validated, then
    decided, as the command handler runs it."""

    state: OrderState | None
    command: Command

    def then(self, *expected: OrderEvent) -> OrderState | None:
        """Assert the command records exactly `expected`; the state after them."""
        events = decide(self.state, validate(self.command))
        assert events == expected
        return fold(events, self.state)

    def raises(self, error: type[E]) -> E:
        """Assert the command is refused with `error`; the error, for closer checks."""
        with pytest.raises(error) as caught:
            decide(self.state, validate(self.command))
        return caught.value


@dataclass(frozen=True, slots=True)
class Given:
    """An order's history, folded."""

    state: OrderState | None

    def when(self, command: Command) -> When:
        """The outcome of `command` on this history."""
        return When(self.state, command)


def given(*events: OrderEvent) -> Given:
    """Start a scenario from the order's past events (none: the order does not exist)."""
    return Given(fold(events))
