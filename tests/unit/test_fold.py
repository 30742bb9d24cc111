"""`fold` is `evolve` applied event by event, on any history the log could hold: the same state,
or the same refusal at the same event (a history no writer could have produced)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal

import pytest
from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st

from domain.events import (
    ItemAdded,
    ItemRemoved,
    LineItem,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    PaymentTaken,
)
from domain.order import InconsistentHistory, OrderState, evolve, fold

PRODUCTS = st.sampled_from(["p0", "p1", "p2"])
MONEY = st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False)
LINES = st.builds(
    LineItem,
    product_id=PRODUCTS,
    name=st.sampled_from(["A", "B"]),
    price=MONEY,
    qty=st.integers(min_value=1, max_value=5),
)
EVENTS: st.SearchStrategy[OrderEvent] = st.one_of(
    st.builds(
        OrderPlaced,
        order_id=st.just("o-1"),
        customer_id=st.just("c-1"),
        items=st.lists(LINES, max_size=3).map(tuple),
        total=MONEY,
    ),
    st.builds(PaymentTaken, amount=MONEY, method=st.just("card"), transaction_id=st.just("tx")),
    st.builds(OrderShipped, tracking_id=st.sampled_from(["T1", "T2"]), carrier=st.just("C")),
    st.builds(OrderCancelled, reason=st.just("why")),
    st.builds(ItemAdded, item=LINES, total=MONEY),
    st.builds(ItemRemoved, product_id=PRODUCTS, total=MONEY),
)
# Mostly well-formed histories (placed first), some not (no placement, or a second one).
HISTORIES = st.one_of(
    st.tuples(EVENTS.filter(lambda e: isinstance(e, OrderPlaced)), st.lists(EVENTS)).map(
        lambda t: [t[0], *t[1]]
    ),
    st.lists(EVENTS, max_size=8),
)


def event_by_event(
    events: Sequence[OrderEvent], state: OrderState | None
) -> OrderState | str | None:
    """The reference: one `evolve` per event; a refusal as its message."""
    try:
        for event in events:
            state = evolve(state, event)
    except InconsistentHistory as refused:
        return str(refused)
    return state


def folded(events: Sequence[OrderEvent], state: OrderState | None) -> OrderState | str | None:
    try:
        return fold(events, state)
    except InconsistentHistory as refused:
        return str(refused)


@settings(max_examples=400, deadline=None)
@for_all(HISTORIES, st.integers(min_value=0, max_value=10))
def test_fold_is_evolve_event_by_event(history: list[OrderEvent], split: int) -> None:
    assert folded(history, None) == event_by_event(history, None)
    # From a state part-way (a snapshot), folding the rest: the same again.
    head, tail = history[:split], history[split:]
    start = event_by_event(head, None)
    if not isinstance(start, str):
        assert folded(tail, start) == event_by_event(tail, start)


PLACED = OrderPlaced(order_id="o-1", customer_id="c-1", items=(), total=Decimal("0"))


def test_fold_takes_the_events_lazily_in_order() -> None:
    """Loading decodes each event as the fold takes it: nothing is read past a refusal."""
    paid = PaymentTaken(amount=Decimal("0"), method="card", transaction_id="tx")
    taken: list[OrderEvent] = []

    def events() -> Iterator[OrderEvent]:
        for event in (PLACED, paid, PLACED):
            taken.append(event)
            yield event
        raise AssertionError("read past the refusal")

    with pytest.raises(InconsistentHistory, match="placed twice"):
        fold(events())
    assert taken == [PLACED, paid, PLACED]


def test_no_events_leave_the_state_as_it_was() -> None:
    assert fold([]) is None
    state = evolve(None, PLACED)
    assert fold([], state) == state
