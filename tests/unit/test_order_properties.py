"""Properties over any sequence of commands: what decide accepts always folds to a sound order."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st

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
from domain.errors import DomainError
from domain.events import LineItem, OrderEvent, OrderStatus
from domain.order import OrderState, fold
from domain.validation import validate

ORDER_ID = "order-p"
PRODUCTS = st.sampled_from([f"p{n}" for n in range(6)])
PRICES = st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False, allow_infinity=False)
LINES = st.builds(
    LineItem,
    product_id=PRODUCTS,
    name=st.just("Thing"),
    price=PRICES,
    qty=st.integers(min_value=1, max_value=10_000),
)
COMMANDS: st.SearchStrategy[Command] = st.one_of(
    st.builds(
        PlaceOrder,
        order_id=st.just(ORDER_ID),
        customer_id=st.just("c-1"),
        items=st.lists(LINES, min_size=1, max_size=4, unique_by=lambda line: line.product_id).map(
            tuple
        ),
    ),
    # None: pay exactly the total at that moment (a random amount would almost never match).
    st.builds(
        TakePayment,
        order_id=st.just(ORDER_ID),
        amount=st.one_of(st.none(), PRICES),
        method=st.just("card"),
        transaction_id=st.just("tx"),
    ),
    st.builds(
        ShipOrder, order_id=st.just(ORDER_ID), tracking_id=st.just("T"), carrier=st.just("C")
    ),
    st.builds(CancelOrder, order_id=st.just(ORDER_ID), reason=st.just("why")),
    st.builds(AddItem, order_id=st.just(ORDER_ID), item=LINES),
    st.builds(RemoveItem, order_id=st.just(ORDER_ID), product_id=PRODUCTS),
)


def _resolve(state: OrderState | None, command: Command) -> Command:
    if isinstance(command, TakePayment) and command.amount is None:
        return TakePayment(
            order_id=command.order_id,
            amount=state.total if state is not None else Decimal("0"),
            method=command.method,
            transaction_id=command.transaction_id,
        )
    return command


@settings(max_examples=300, deadline=None)
@for_all(st.lists(COMMANDS, max_size=25))
def test_accepted_commands_keep_the_order_sound(commands: list[Command]) -> None:
    history: list[OrderEvent] = []
    state: OrderState | None = None

    for command in commands:
        try:
            events = decide(state, validate(_resolve(state, command)))
        except DomainError:
            continue  # refused: nothing recorded, the state stays as it was
        history.extend(events)
        state = fold(events, state)

        assert state is not None
        assert state.version == len(history)
        assert state.total == sum((line.price * line.qty for line in state.items), Decimal(0))
        assert state.total.as_tuple().exponent == -2
        assert 1 <= len(state.items) <= 100
        assert len({line.product_id for line in state.items}) == len(state.items)

    assert fold(history) == state


@settings(max_examples=200, deadline=None)
@for_all(st.lists(COMMANDS, max_size=25))
def test_a_shipped_or_cancelled_order_accepts_nothing_more(commands: list[Command]) -> None:
    state: OrderState | None = None
    for command in commands:
        try:
            events = decide(state, validate(_resolve(state, command)))
        except DomainError:
            continue
        if state is not None:
            assert state.status not in (OrderStatus.SHIPPED, OrderStatus.CANCELLED)
        state = fold(events, state)
