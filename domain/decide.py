"""The Order's rules: `decide(state, command) -> events`, pure (CONTRACT "Command rules").

The command comes validated (and normalised) by `domain.validation.validate`: the command handler
validates once, before it reads, because a bad order id must never become a stream name. Then the
order's state judges the command here. The handler loads the state, appends what this returns with
the version it read, and owns optimistic concurrency (`ConcurrencyConflict`).
"""

from __future__ import annotations

from decimal import Decimal

from domain.commands import (
    AddItem,
    CancelOrder,
    Command,
    PlaceOrder,
    RemoveItem,
    ShipOrder,
    TakePayment,
)
from domain.errors import InvalidTransition, NotOrderOwner, OrderAlreadyExists, OrderNotFound
from domain.events import (
    ItemAdded,
    ItemRemoved,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
    PaymentTaken,
)
from domain.order import OrderState
from domain.validation import MAX_ITEMS


def decide(state: OrderState | None, command: Command) -> tuple[OrderEvent, ...]:
    """The events that `command` records on the order in `state` (None: no such order yet).

    `command` must have passed `validate` (input rules come before state rules). Raises
    `NotOrderOwner` when a customer asks about another customer's order (before any other rule,
    so the refusal tells nothing of the order), and `OrderNotFound`, `OrderAlreadyExists` or
    `InvalidTransition` when the order's state refuses the command.
    """
    check_owner(state, command)
    if isinstance(command, PlaceOrder):
        if state is not None:
            raise OrderAlreadyExists(command.order_id)
        return (
            OrderPlaced(
                order_id=command.order_id,
                customer_id=command.customer_id,
                items=command.items,
                total=sum((item.subtotal for item in command.items), Decimal("0.00")),
            ),
        )
    if state is None:
        raise OrderNotFound(command.order_id)
    if state.id != command.order_id:
        # The handler loaded another order's stream: a bug upstream, never a caller's mistake.
        raise ValueError(f"command for order {command.order_id} decided on order {state.id}")
    match command:
        case TakePayment():
            return _take_payment(state, command)
        case ShipOrder():
            _require(state, state.status is OrderStatus.PAID, "ship")
            return (OrderShipped(tracking_id=command.tracking_id, carrier=command.carrier),)
        case CancelOrder():
            _require(
                state,
                state.status not in (OrderStatus.SHIPPED, OrderStatus.CANCELLED),
                "cancel",
            )
            return (OrderCancelled(reason=command.reason),)
        case AddItem():
            return _add_item(state, command)
        case RemoveItem():
            return _remove_item(state, command)


def check_owner(state: OrderState | None, command: Command) -> None:
    """Raise `NotOrderOwner` when `command` comes from a customer and the order is another
    customer's. An order that does not exist has no owner to protect: the other rules answer.
    The first rule `decide` applies; the handler also applies it before judging an expected
    version, whose conflict would tell the order's version."""
    if isinstance(command, PlaceOrder) or state is None:
        return
    customer = command.by_customer
    if customer is not None and customer != state.customer_id:
        raise NotOrderOwner(command.order_id)


def _require(state: OrderState, allowed: bool, verb: str) -> None:
    if not allowed:
        raise InvalidTransition(state.status, f"cannot {verb} an order that is {state.status}")


def _take_payment(state: OrderState, command: TakePayment) -> tuple[OrderEvent, ...]:
    _require(state, state.status is OrderStatus.PENDING, "take payment for")
    # CONTRACT "Command rules": the amount must equal the total, and a rule broken gives
    # InvalidTransition with the current status. Judged after the status, because only a pending
    # order's total is an amount anyone can pay.
    if command.amount != state.total:
        raise InvalidTransition(
            state.status,
            f"amount {command.amount} does not equal the order's total {state.total}",
        )
    return (
        PaymentTaken(
            amount=command.amount,
            method=command.method,
            transaction_id=command.transaction_id,
        ),
    )


def _add_item(state: OrderState, command: AddItem) -> tuple[OrderEvent, ...]:
    _require(state, state.status is OrderStatus.PENDING, "add an item to")
    item = command.item
    if state.item(item.product_id) is not None:
        raise InvalidTransition(
            state.status, f"product {item.product_id} is already in order {state.id}"
        )
    # InvalidTransition, not ValidationFailed: the item itself is fine, it is this order's
    # state (already full) that refuses it, and the contract files it among the addItem rules.
    if len(state.items) >= MAX_ITEMS:
        raise InvalidTransition(
            state.status, f"order {state.id} already holds the maximum of {MAX_ITEMS} items"
        )
    return (ItemAdded(item=item, total=state.total + item.subtotal),)


def _remove_item(state: OrderState, command: RemoveItem) -> tuple[OrderEvent, ...]:
    _require(state, state.status is OrderStatus.PENDING, "remove an item from")
    item = state.item(command.product_id)
    if item is None:
        raise InvalidTransition(
            state.status, f"product {command.product_id} is not in order {state.id}"
        )
    if len(state.items) == 1:
        raise InvalidTransition(
            state.status, f"cannot remove the last item of order {state.id}; cancel it instead"
        )
    return (ItemRemoved(product_id=item.product_id, total=state.total - item.subtotal),)
