"""Input rules: bad input is refused with the path of the field at fault, whatever the state."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

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
from domain.validation import validate, validate_id, validate_money, validate_text
from tests.unit import CUSTOMER_ID, ORDER_ID, given, item, placed

OK_PLACE = PlaceOrder(order_id=ORDER_ID, customer_id=CUSTOMER_ID, items=(item("p1"), item("p2")))


def with_item(index: int, **changes: object) -> PlaceOrder:
    items = list(OK_PLACE.items)
    items[index] = replace(items[index], **changes)  # type: ignore[arg-type]
    return replace(OK_PLACE, items=tuple(items))


def many(count: int) -> tuple[LineItem, ...]:
    return tuple(item(f"p{n}") for n in range(count))


BAD_PLACE_ORDERS: list[tuple[PlaceOrder, str]] = [
    (replace(OK_PLACE, order_id=""), "orderId"),
    (replace(OK_PLACE, order_id="has space"), "orderId"),
    (replace(OK_PLACE, order_id="-leading-dash"), "orderId"),
    (replace(OK_PLACE, order_id="trailing-newline\n"), "orderId"),
    (replace(OK_PLACE, order_id="a" * 65), "orderId"),
    (replace(OK_PLACE, order_id="order/1"), "orderId"),
    (replace(OK_PLACE, order_id="ordér"), "orderId"),
    (replace(OK_PLACE, customer_id=""), "customerId"),
    (replace(OK_PLACE, customer_id="x" * 65), "customerId"),
    (replace(OK_PLACE, items=()), "items"),
    (replace(OK_PLACE, items=many(101)), "items"),
    (with_item(1, product_id="bad id"), "items[1].productId"),
    (with_item(1, product_id="p1"), "items[1].productId"),
    (with_item(0, name=""), "items[0].name"),
    (with_item(0, name="   "), "items[0].name"),
    (with_item(0, name="n" * 201), "items[0].name"),
    (with_item(0, name="nul\x00byte"), "items[0].name"),
    (with_item(1, price=Decimal("-0.01")), "items[1].price"),
    (with_item(1, price=Decimal("1.005")), "items[1].price"),
    (with_item(1, price=Decimal("NaN")), "items[1].price"),
    (with_item(1, price=Decimal("sNaN")), "items[1].price"),
    (with_item(1, price=Decimal("Infinity")), "items[1].price"),
    (with_item(1, price=Decimal("1000000000.01")), "items[1].price"),
    (with_item(1, price=Decimal("1E+100")), "items[1].price"),
    (with_item(1, price=1.5), "items[1].price"),
    (with_item(1, price="1.50"), "items[1].price"),
    (with_item(0, qty=0), "items[0].qty"),
    (with_item(0, qty=-1), "items[0].qty"),
    (with_item(0, qty=10_001), "items[0].qty"),
    (with_item(0, qty=True), "items[0].qty"),
    (with_item(0, qty=1.0), "items[0].qty"),
]


@pytest.mark.parametrize(("command", "field"), BAD_PLACE_ORDERS)
def test_bad_place_order_input_names_the_field(command: PlaceOrder, field: str) -> None:
    error = given().when(command).raises(ValidationFailed)

    assert error.field == field
    assert error.code == "VALIDATION_FAILED"
    assert error.message


def pay(**changes: object) -> TakePayment:
    ok = TakePayment(order_id=ORDER_ID, amount=Decimal("10.00"), method="card", transaction_id="t")
    return replace(ok, **changes)  # type: ignore[arg-type]


BAD_COMMANDS: list[tuple[Command, str]] = [
    (pay(amount=Decimal("-10.00")), "amount"),
    (pay(amount=Decimal("10.001")), "amount"),
    (pay(amount=Decimal("NaN")), "amount"),
    (pay(amount=Decimal("1E+16")), "amount"),
    (pay(method=""), "method"),
    (pay(transaction_id=" \t "), "transactionId"),
    (pay(order_id="x y"), "orderId"),
    (ShipOrder(order_id=ORDER_ID, tracking_id="", carrier="DHL"), "trackingId"),
    (ShipOrder(order_id=ORDER_ID, tracking_id="T1", carrier="c" * 201), "carrier"),
    (CancelOrder(order_id=ORDER_ID, reason=""), "reason"),
    (AddItem(order_id=ORDER_ID, item=item("bad id")), "item.productId"),
    (AddItem(order_id=ORDER_ID, item=item("p2", price="-1")), "item.price"),
    (AddItem(order_id=ORDER_ID, item=item("p2", qty=0)), "item.qty"),
    (AddItem(order_id=ORDER_ID, item=item("p2", name="")), "item.name"),
    (RemoveItem(order_id=ORDER_ID, product_id=""), "productId"),
]


@pytest.mark.parametrize(("command", "field"), BAD_COMMANDS)
def test_bad_input_names_the_field_even_on_an_existing_order(command: Command, field: str) -> None:
    error = given(placed()).when(command).raises(ValidationFailed)

    assert error.field == field


@pytest.mark.parametrize(
    "order_id",
    ["a", "A1", "0", "order-1", "a.b:c_d-e", "a" * 64, "550e8400-e29b-41d4-a716-446655440000"],
)
def test_ids_of_the_contract_pattern_are_accepted(order_id: str) -> None:
    assert validate_id(order_id, "orderId") == order_id


def test_the_limits_themselves_are_accepted() -> None:
    command = PlaceOrder(
        order_id="o" * 64,
        customer_id=CUSTOMER_ID,
        items=(
            *many(99),
            item("max", price="1000000000.00", qty=10_000, name="n" * 200),
        ),
    )

    validated = validate(command)

    assert validated == command


def test_text_is_trimmed() -> None:
    cancel = CancelOrder(order_id=ORDER_ID, reason="  too slow \n")

    assert validate(cancel) == CancelOrder(order_id=ORDER_ID, reason="too slow")


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        (Decimal("25"), "25.00"),
        (Decimal("1.5"), "1.50"),
        (Decimal("1.500"), "1.50"),
        (Decimal("1E+2"), "100.00"),
        (Decimal("-0"), "0.00"),
        (Decimal("0E-10"), "0.00"),
        (7, "7.00"),
    ],
)
def test_money_is_normalised_to_two_places(raw: Decimal | int, normalised: str) -> None:
    assert str(validate_money(raw, "price")) == normalised


def test_text_checks_are_plain_about_what_is_wrong() -> None:
    with pytest.raises(ValidationFailed, match="at most 200 characters"):
        validate_text("x" * 201, "reason")
    with pytest.raises(ValidationFailed, match="must not be empty"):
        validate_text("", "reason")


def test_validation_is_idempotent() -> None:
    # The command handler validates up front and decide validates again: same result both times.
    command = PlaceOrder(
        order_id=ORDER_ID,
        customer_id=CUSTOMER_ID,
        items=(item("p1", "1.5", name=" Mug "), item("p2", "-0")),
    )

    once = validate(command)

    assert validate(once) == once
    assert [str(line.price) for line in once.items] == ["1.50", "0.00"]
