"""The Order's rules, read as given events / when a command / then events (or a refusal)."""

from __future__ import annotations

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
from domain.decide import decide
from domain.errors import (
    InvalidTransition,
    NotOrderOwner,
    OrderAlreadyExists,
    OrderNotFound,
    ValidationFailed,
)
from domain.events import (
    ItemAdded,
    ItemRemoved,
    LineItem,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
)
from domain.order import fold
from domain.validation import validate
from tests.unit import (
    CUSTOMER_ID,
    ORDER_ID,
    cancelled,
    given,
    item,
    paid,
    placed,
    shipped,
)


def place(*items: LineItem, order_id: str = ORDER_ID) -> PlaceOrder:
    return PlaceOrder(order_id=order_id, customer_id=CUSTOMER_ID, items=items)


def pay(amount: str = "10.00") -> TakePayment:
    return TakePayment(
        order_id=ORDER_ID, amount=Decimal(amount), method="card", transaction_id="tx-1"
    )


def ship() -> ShipOrder:
    return ShipOrder(order_id=ORDER_ID, tracking_id="TRACK-1", carrier="DHL")


def cancel() -> CancelOrder:
    return CancelOrder(order_id=ORDER_ID, reason="changed my mind")


def add(product_id: str = "p2", price: str = "5.00", qty: int = 1) -> AddItem:
    return AddItem(order_id=ORDER_ID, item=item(product_id, price, qty))


def remove(product_id: str = "p1") -> RemoveItem:
    return RemoveItem(order_id=ORDER_ID, product_id=product_id)


# placeOrder


def test_place_order_records_the_items_and_computes_the_total() -> None:
    given().when(place(item("p1", "2.50", 2), item("p2", "0.99", 3))).then(
        OrderPlaced(
            order_id=ORDER_ID,
            customer_id=CUSTOMER_ID,
            items=(item("p1", "2.50", 2), item("p2", "0.99", 3)),
            total=Decimal("7.97"),
        )
    )


def test_money_is_exact() -> None:
    (event,) = decide(None, validate(place(item("p1", "0.10", 3), item("p2", "0.20", 1))))

    assert isinstance(event, OrderPlaced)
    assert event.total == Decimal("0.50")
    assert str(event.total) == "0.50"


def test_money_is_normalised_to_two_places() -> None:
    (event,) = decide(None, validate(place(item("p1", "25", 1), item("p2", "1.5", 2))))

    assert isinstance(event, OrderPlaced)
    assert [str(line.price) for line in event.items] == ["25.00", "1.50"]
    assert str(event.total) == "28.00"


def test_a_free_order_totals_zero() -> None:
    (event,) = decide(None, validate(place(item("p1", "0", 5))))

    assert isinstance(event, OrderPlaced)
    assert str(event.total) == "0.00"


def test_place_order_trims_text() -> None:
    (event,) = decide(None, validate(place(item("p1", name="  Blue mug "))))

    assert isinstance(event, OrderPlaced)
    assert event.items[0].name == "Blue mug"


@pytest.mark.parametrize("history", [(placed(),), (placed(), paid()), (placed(), cancelled())])
def test_placing_an_existing_order_is_refused(history: tuple[OrderEvent, ...]) -> None:
    error = given(*history).when(place(item())).raises(OrderAlreadyExists)

    assert error.order_id == ORDER_ID
    assert error.code == "ORDER_ALREADY_EXISTS"


# takePayment


def test_take_payment_of_the_total_pays_the_order() -> None:
    state = given(placed()).when(pay("10.00")).then(paid("10.00"))

    assert state is not None
    assert state.status is OrderStatus.PAID


def test_take_payment_compares_amounts_as_decimals() -> None:
    given(placed()).when(pay("10")).then(paid("10.00"))


@pytest.mark.parametrize("amount", ["9.99", "10.01", "0", "100.00"])
def test_a_wrong_amount_is_a_broken_rule_with_the_status(amount: str) -> None:
    error = given(placed()).when(pay(amount)).raises(InvalidTransition)

    assert error.status is OrderStatus.PENDING
    assert "10.00" in error.message


def test_a_paid_order_cannot_be_paid_again_even_with_a_wrong_amount() -> None:
    error = given(placed(), paid()).when(pay("3.00")).raises(InvalidTransition)

    assert error.status is OrderStatus.PAID


# shipOrder


def test_ship_order_ships_a_paid_order() -> None:
    state = (
        given(placed(), paid())
        .when(ship())
        .then(OrderShipped(tracking_id="TRACK-1", carrier="DHL"))
    )

    assert state is not None
    assert (state.status, state.tracking_id, state.carrier) == (
        OrderStatus.SHIPPED,
        "TRACK-1",
        "DHL",
    )


def test_shipping_a_pending_order_says_why() -> None:
    error = given(placed()).when(ship()).raises(InvalidTransition)

    assert error.status is OrderStatus.PENDING
    assert error.message == "cannot ship an order that is PENDING"
    assert error.code == "INVALID_TRANSITION"


# cancelOrder


@pytest.mark.parametrize("history", [(placed(),), (placed(), paid())])
def test_cancel_order_cancels_an_unshipped_order(history: tuple[OrderEvent, ...]) -> None:
    state = given(*history).when(cancel()).then(OrderCancelled(reason="changed my mind"))

    assert state is not None
    assert state.status is OrderStatus.CANCELLED


def test_a_shipped_order_cannot_be_cancelled() -> None:
    error = given(placed(), paid(), shipped()).when(cancel()).raises(InvalidTransition)

    assert error.message == "cannot cancel an order that is SHIPPED"


def test_a_cancelled_order_cannot_be_cancelled_again() -> None:
    error = given(placed(), cancelled()).when(cancel()).raises(InvalidTransition)

    assert error.status is OrderStatus.CANCELLED


# addItem / removeItem


def test_add_item_appends_it_with_the_new_total() -> None:
    state = (
        given(placed(item("p1", "10.00")))
        .when(add("p2", "0.10", 3))
        .then(ItemAdded(item=item("p2", "0.10", 3), total=Decimal("10.30")))
    )

    assert state is not None
    assert [line.product_id for line in state.items] == ["p1", "p2"]
    assert state.total == Decimal("10.30")


def test_adding_a_product_already_in_the_order_is_refused() -> None:
    error = given(placed(item("p1"))).when(add("p1")).raises(InvalidTransition)

    assert error.status is OrderStatus.PENDING
    assert "p1" in error.message


def test_the_100_item_limit_holds_for_added_items() -> None:
    full = placed(*(item(f"p{n}", "1.00") for n in range(100)))

    error = given(full).when(add("one-more")).raises(InvalidTransition)

    assert "100" in error.message


def test_the_100th_item_can_be_added() -> None:
    almost_full = placed(*(item(f"p{n}", "1.00") for n in range(99)))

    given(almost_full).when(add("last", "1.00")).then(
        ItemAdded(item=item("last", "1.00"), total=Decimal("100.00"))
    )


def test_remove_item_drops_it_with_the_new_total() -> None:
    history = placed(item("p1", "10.00"), item("p2", "2.50", 2), item("p3", "1.00"))

    state = (
        given(history).when(remove("p2")).then(ItemRemoved(product_id="p2", total=Decimal("11.00")))
    )

    assert state is not None
    assert [line.product_id for line in state.items] == ["p1", "p3"]


def test_removing_a_product_not_in_the_order_is_refused() -> None:
    error = given(placed(item("p1"), item("p2"))).when(remove("p9")).raises(InvalidTransition)

    assert "p9" in error.message


def test_the_last_item_cannot_be_removed() -> None:
    error = given(placed(item("p1"))).when(remove("p1")).raises(InvalidTransition)

    assert "last item" in error.message


def test_an_order_amended_then_paid_pays_its_new_total() -> None:
    state = fold(
        [placed(item("p1", "10.00")), ItemAdded(item=item("p2", "0.10", 3), total=Decimal("10.30"))]
    )

    assert decide(state, validate(pay("10.30"))) == (paid("10.30"),)
    with pytest.raises(InvalidTransition):
        decide(state, validate(pay("10.00")))


# Missing orders


@pytest.mark.parametrize("command", [pay(), ship(), cancel(), add(), remove()])
def test_every_command_but_place_needs_an_existing_order(command: Command) -> None:
    error = given().when(command).raises(OrderNotFound)

    assert error.order_id == ORDER_ID
    assert error.code == "ORDER_NOT_FOUND"


# The whole matrix: each status x each command, allowed or refused with that status.

TWO_ITEMS = placed(item("p1", "10.00"), item("p2", "5.00"))
HISTORIES: dict[OrderStatus, tuple[OrderEvent, ...]] = {
    OrderStatus.PENDING: (TWO_ITEMS,),
    OrderStatus.PAID: (TWO_ITEMS, paid("15.00")),
    OrderStatus.SHIPPED: (TWO_ITEMS, paid("15.00"), shipped()),
    OrderStatus.CANCELLED: (TWO_ITEMS, cancelled()),
}
COMMANDS: dict[str, tuple[Command, frozenset[OrderStatus]]] = {
    "takePayment": (pay("15.00"), frozenset({OrderStatus.PENDING})),
    "shipOrder": (ship(), frozenset({OrderStatus.PAID})),
    "cancelOrder": (cancel(), frozenset({OrderStatus.PENDING, OrderStatus.PAID})),
    "addItem": (add("p3"), frozenset({OrderStatus.PENDING})),
    "removeItem": (remove("p2"), frozenset({OrderStatus.PENDING})),
}
EXPECTED_STATUS_AFTER: dict[str, OrderStatus | None] = {
    "takePayment": OrderStatus.PAID,
    "shipOrder": OrderStatus.SHIPPED,
    "cancelOrder": OrderStatus.CANCELLED,
    "addItem": None,
    "removeItem": None,
}


@pytest.mark.parametrize("status", list(OrderStatus))
@pytest.mark.parametrize("name", list(COMMANDS))
def test_transition_matrix(status: OrderStatus, name: str) -> None:
    command, allowed_from = COMMANDS[name]
    scenario = given(*HISTORIES[status]).when(command)

    if status in allowed_from:
        (event,) = decide(scenario.state, validate(command))
        state = fold([event], scenario.state)
        assert state is not None
        assert state.version == len(HISTORIES[status]) + 1
        assert state.status is (EXPECTED_STATUS_AFTER[name] or status)
    else:
        error = scenario.raises(InvalidTransition)
        assert error.status is status
        assert str(status) in error.message


# Order of checks and sanity


def test_validation_runs_before_state_rules() -> None:
    # Bad input is reported as such even where the state would also refuse the command.
    error = (
        given(placed(), paid(), shipped())
        .when(ShipOrder(order_id=ORDER_ID, tracking_id=" ", carrier="DHL"))
        .raises(ValidationFailed)
    )
    assert error.field == "trackingId"

    error = given().when(RemoveItem(order_id="bad id", product_id="p1")).raises(ValidationFailed)
    assert error.field == "orderId"

    error = given(placed()).when(place(item(price="-1"))).raises(ValidationFailed)
    assert error.field == "items[0].price"


def test_deciding_on_another_orders_state_is_a_bug() -> None:
    state = fold([placed(order_id="other")])

    with pytest.raises(ValueError, match="decided on order other"):
        decide(state, validate(pay()))


def test_decide_returns_new_events_and_leaves_the_state_alone() -> None:
    state = fold([placed()])

    decide(state, validate(pay()))

    assert state == fold([placed()])


# ownership: a customer acts only on its own orders


def test_the_customer_who_placed_the_order_may_cancel_it() -> None:
    mine = CancelOrder(order_id=ORDER_ID, reason="changed my mind", by_customer=CUSTOMER_ID)
    given(placed()).when(mine).then(OrderCancelled(reason="changed my mind"))


def test_another_customer_is_refused_before_any_rule_about_the_order() -> None:
    theirs = CancelOrder(order_id=ORDER_ID, reason="x", by_customer="someone-else")
    # A shipped order would refuse the cancellation too: ownership is judged first, so the
    # refusal tells nothing of the order's state.
    with pytest.raises(NotOrderOwner):
        decide(fold([placed(), paid(), shipped()]), theirs)


def test_a_customer_asking_about_a_missing_order_is_told_it_is_missing() -> None:
    with pytest.raises(OrderNotFound):
        decide(None, CancelOrder(order_id=ORDER_ID, reason="x", by_customer="someone-else"))
