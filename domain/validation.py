"""Input rules every command must pass before any state rule runs (CONTRACT section 1 and
"Command rules"). Each check raises `ValidationFailed` naming the input path of the bad field
("orderId", "items[2].price", "item.qty", "amount", ...) and returns the value normalised.

The rules:
- Order ids match `^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`, because they become stream names.
  Customer ids and product ids follow the same pattern: they are ids from other systems that end
  up in keys, filters and logs, and one bounded, printable shape for every id is easy to explain.
- An order has 1..100 items, with no product id twice.
- `qty` is an integer 1..10,000.
- Money (`price`, `amount`) is a finite `Decimal` >= 0 with at most 2 decimal places, at most
  1,000,000,000.00 per price (so no total exceeds 10^15 and Decimal arithmetic stays exact), and is
  normalised to exactly two places ("25" becomes "25.00"), the contract's money shape.
- Free text (name, method, transactionId, trackingId, carrier, reason) is trimmed, non-empty,
  at most 200 characters and free of control characters.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from decimal import Decimal
from typing import TypeVar

from domain.commands import (
    AddItem,
    CancelOrder,
    Command,
    PlaceOrder,
    RemoveItem,
    ShipOrder,
    TakePayment,
)
from domain.errors import ValidationFailed
from domain.events import LineItem

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
"""Applied with `fullmatch`: `$` alone would let a trailing newline through."""

MAX_ITEMS = 100
MIN_QTY = 1
MAX_QTY = 10_000
CENT = Decimal("0.01")
MAX_PRICE = Decimal("1000000000.00")
MAX_AMOUNT = MAX_PRICE * MAX_QTY * MAX_ITEMS
"""No order's total can exceed this, so no payment may either."""
MAX_TEXT_LENGTH = 200


def validate_id(value: object, field: str) -> str:
    """`value` if it is an id of the contract's pattern."""
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise ValidationFailed(
            f"{field} must be 1 to 64 letters, digits or '_.:-', starting with a letter or digit",
            field,
        )
    return value


def validate_text(value: object, field: str) -> str:
    """`value` trimmed, if it is non-empty, short enough and free of control characters."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be a string", field)
    text = value.strip()
    if not text:
        raise ValidationFailed(f"{field} must not be empty", field)
    if len(text) > MAX_TEXT_LENGTH:
        raise ValidationFailed(f"{field} must be at most {MAX_TEXT_LENGTH} characters", field)
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise ValidationFailed(f"{field} must not contain control characters", field)
    return text


def validate_money(value: object, field: str, *, maximum: Decimal = MAX_PRICE) -> Decimal:
    """`value` as a two-place Decimal, if it is a finite amount in 0..maximum with <= 2 places."""
    # bool is an int; a float has already lost exactness, so neither is money.
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise ValidationFailed(f"{field} must be a decimal amount", field)
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValidationFailed(f"{field} must be a finite number", field)
    if amount < 0:
        raise ValidationFailed(f"{field} must not be negative", field)
    # Bounded before quantizing: quantize raises on values beyond the context's precision.
    if amount > maximum:
        raise ValidationFailed(f"{field} must be at most {maximum}", field)
    cents = amount.quantize(CENT)
    if cents != amount:
        raise ValidationFailed(f"{field} must have at most 2 decimal places", field)
    # abs() turns "-0.00" into "0.00", which is what anyone reading the log expects.
    return abs(cents) if cents.is_zero() else cents


def validate_qty(value: object, field: str) -> int:
    """`value` if it is an integer quantity in MIN_QTY..MAX_QTY."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{field} must be an integer", field)
    if not MIN_QTY <= value <= MAX_QTY:
        raise ValidationFailed(f"{field} must be between {MIN_QTY} and {MAX_QTY}", field)
    return value


def validate_item(item: LineItem, path: str) -> LineItem:
    """`item` with every field checked and normalised; `path` prefixes the field names."""
    return LineItem(
        product_id=validate_id(item.product_id, f"{path}.productId"),
        name=validate_text(item.name, f"{path}.name"),
        price=validate_money(item.price, f"{path}.price"),
        qty=validate_qty(item.qty, f"{path}.qty"),
    )


def validate_items(items: tuple[LineItem, ...]) -> tuple[LineItem, ...]:
    """A new order's items, each checked, with 1..MAX_ITEMS lines and no product twice."""
    if not items:
        raise ValidationFailed("an order needs at least one item", "items")
    if len(items) > MAX_ITEMS:
        raise ValidationFailed(f"an order holds at most {MAX_ITEMS} items", "items")
    checked = tuple(validate_item(item, f"items[{index}]") for index, item in enumerate(items))
    seen: set[str] = set()
    for index, item in enumerate(checked):
        if item.product_id in seen:
            raise ValidationFailed(
                f"product {item.product_id} appears more than once", f"items[{index}].productId"
            )
        seen.add(item.product_id)
    return checked


CommandT = TypeVar(
    "CommandT", PlaceOrder, TakePayment, ShipOrder, CancelOrder, AddItem, RemoveItem, Command
)


def validate(command: CommandT) -> CommandT:
    """`command` with every input rule checked and its values normalised (text trimmed,
    money to two places)."""
    order_id = validate_id(command.order_id, "orderId")
    match command:
        case PlaceOrder():
            return replace(
                command,
                order_id=order_id,
                customer_id=validate_id(command.customer_id, "customerId"),
                items=validate_items(command.items),
            )
        case TakePayment():
            return replace(
                command,
                amount=validate_money(command.amount, "amount", maximum=MAX_AMOUNT),
                method=validate_text(command.method, "method"),
                transaction_id=validate_text(command.transaction_id, "transactionId"),
            )
        case ShipOrder():
            return replace(
                command,
                tracking_id=validate_text(command.tracking_id, "trackingId"),
                carrier=validate_text(command.carrier, "carrier"),
            )
        case CancelOrder():
            return replace(command, reason=validate_text(command.reason, "reason"))
        case AddItem():
            return replace(command, item=validate_item(command.item, "item"))
        case RemoveItem():
            return replace(command, product_id=validate_id(command.product_id, "productId"))
