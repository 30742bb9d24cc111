"""The Order's state folded from its events: every event, versions, item order, bad histories."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from domain.events import ItemAdded, ItemRemoved, OrderEvent, OrderStatus
from domain.order import InconsistentHistory, OrderState, evolve, fold
from tests.unit import CUSTOMER_ID, ORDER_ID, cancelled, item, paid, placed, shipped


def test_order_placed_creates_a_pending_order_at_version_1() -> None:
    state = evolve(None, placed(item("p1", "2.50", 2), item("p2", "1.00", 3)))

    assert state == OrderState(
        id=ORDER_ID,
        customer_id=CUSTOMER_ID,
        status=OrderStatus.PENDING,
        items=(item("p1", "2.50", 2), item("p2", "1.00", 3)),
        total=Decimal("8.00"),
        tracking_id=None,
        carrier=None,
        version=1,
    )


def test_payment_taken_makes_it_paid() -> None:
    state = fold([placed(), paid()])

    assert state is not None
    assert (state.status, state.version, state.total) == (OrderStatus.PAID, 2, Decimal("10.00"))


def test_order_shipped_records_tracking_and_carrier() -> None:
    state = fold([placed(), paid(), shipped()])

    assert state is not None
    assert state.status is OrderStatus.SHIPPED
    assert (state.tracking_id, state.carrier) == ("TRACK-1", "DHL")
    assert state.version == 3


def test_order_cancelled_makes_it_cancelled() -> None:
    state = fold([placed(), cancelled()])

    assert state is not None
    assert (state.status, state.version) == (OrderStatus.CANCELLED, 2)


def test_item_added_appends_the_line_and_takes_the_events_total() -> None:
    state = fold([placed(item("p1")), ItemAdded(item=item("p2", "5.00"), total=Decimal("15.00"))])

    assert state is not None
    assert [line.product_id for line in state.items] == ["p1", "p2"]
    assert state.total == Decimal("15.00")
    assert state.version == 2


def test_item_removed_drops_by_product_id_and_keeps_the_others_in_order() -> None:
    events: list[OrderEvent] = [
        placed(item("p1"), item("p2"), item("p3")),
        ItemRemoved(product_id="p2", total=Decimal("20.00")),
        ItemAdded(item=item("p4"), total=Decimal("30.00")),
    ]

    state = fold(events)

    assert state is not None
    assert [line.product_id for line in state.items] == ["p1", "p3", "p4"]
    assert state.total == Decimal("30.00")
    assert state.version == 3


def test_totals_come_from_the_events_not_a_recount() -> None:
    # A legacy OrderPlaced upcasts to items priced "0" with the real total beside them.
    legacy = replace(placed(item("p1", "0")), total=Decimal("25.5"))

    legacy_state = fold([legacy])

    assert legacy_state is not None
    assert legacy_state.total == Decimal("25.5")


def test_fold_of_nothing_is_no_order() -> None:
    assert fold([]) is None


def test_fold_continues_from_a_given_state() -> None:
    start = fold([placed()])

    state = fold([paid(), shipped()], start)

    assert state == fold([placed(), paid(), shipped()])


def test_version_counts_every_event() -> None:
    events: list[OrderEvent] = [
        placed(item("p1")),
        ItemAdded(item=item("p2"), total=Decimal("20.00")),
    ]
    events += [ItemRemoved(product_id="p2", total=Decimal("10.00")), paid(), shipped()]

    state = fold(events)

    assert state is not None
    assert state.version == len(events)


def test_evolve_does_not_change_the_state_it_was_given() -> None:
    before = fold([placed()])
    assert before is not None

    after = evolve(before, paid())

    assert before.status is OrderStatus.PENDING
    assert before.version == 1
    assert after is not before


def test_an_event_before_order_placed_is_an_inconsistent_history() -> None:
    with pytest.raises(InconsistentHistory, match="PaymentTaken before OrderPlaced"):
        fold([paid()])


def test_a_second_order_placed_is_an_inconsistent_history() -> None:
    with pytest.raises(InconsistentHistory, match="placed twice"):
        fold([placed(), placed()])
