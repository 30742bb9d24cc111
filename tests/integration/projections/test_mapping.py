"""The pure mapping, without Redis: events to views, stats deltas, money units."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from application.codec import decode_record
from domain.events import (
    ItemAdded,
    ItemRemoved,
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
    PaymentTaken,
)
from projections.mapping import (
    ChangeKind,
    InvalidChange,
    change_of,
    evolve_view,
    fold_stats,
    fold_views,
    money_units,
    stats_delta,
)
from tests.integration.projections.factories import EPOCH, Log, item


def placed(log: Log, order_id: str = "a", customer: str = "c") -> None:
    log.record(
        order_id,
        OrderPlaced(
            order_id=order_id,
            customer_id=customer,
            items=(item("p1", "2.50", 2), item("p2", "1.00", 1)),
            total=Decimal("6.00"),
        ),
    )


def test_placed_creates_the_view_with_every_contract_field() -> None:
    log = Log(start=500)
    placed(log)
    view = evolve_view(None, log.decoded()[0])
    assert view.id == "a"
    assert view.customer_id == "c"
    assert view.status is OrderStatus.PENDING
    assert view.item_count == 3  # the sum of quantities
    assert view.total == Decimal("6.00")
    assert view.tracking_id is None
    assert view.carrier is None
    assert view.created_at == view.updated_at == EPOCH
    assert (view.version, view.position, view.placed_position) == (1, 500, 500)


def test_each_event_moves_the_view() -> None:
    log = Log()
    placed(log)
    log.record("a", ItemAdded(item=item("p3", "0.50", 4), total=Decimal("8.00")))
    log.record("a", ItemRemoved(product_id="p1", total=Decimal("3.00")))
    log.record("a", PaymentTaken(amount=Decimal("3.00"), method="card", transaction_id="t"))
    log.record("a", OrderShipped(tracking_id="TR", carrier="UPS"))
    view = fold_views(log.decoded())["a"]
    assert [i.product_id for i in view.items] == ["p2", "p3"]
    assert view.item_count == 5
    assert view.total == Decimal("3.00")
    assert view.status is OrderStatus.SHIPPED
    assert (view.tracking_id, view.carrier) == ("TR", "UPS")
    assert view.version == 5
    assert view.created_at < view.updated_at
    assert view.placed_position == log.records[0].position
    assert view.position == log.records[-1].position


def test_stats_delta_moves_count_and_revenue_between_statuses() -> None:
    log = Log()
    placed(log)
    log.record("a", OrderCancelled(reason="x"))
    first, second = log.decoded()
    before = evolve_view(None, first)
    after = evolve_view(before, second)
    assert stats_delta(None, before).new_orders == 1
    delta = stats_delta(before, after)
    assert delta.new_orders == 0
    assert delta.counts == {OrderStatus.PENDING: -1, OrderStatus.CANCELLED: 1}
    assert delta.revenue == {
        OrderStatus.PENDING: Decimal("-6.00"),
        OrderStatus.CANCELLED: Decimal("6.00"),
    }


def test_fold_stats_sums_per_status() -> None:
    log = Log()
    placed(log, "a")
    placed(log, "b")
    log.record("b", PaymentTaken(amount=Decimal("6.00"), method="card", transaction_id="t"))
    stats = fold_stats(fold_views(log.decoded()).values())
    by = {s.status: (s.count, s.revenue) for s in stats.by_status}
    assert stats.total_orders == 2
    assert by[OrderStatus.PENDING] == (1, Decimal("6.00"))
    assert by[OrderStatus.PAID] == (1, Decimal("6.00"))
    assert by[OrderStatus.SHIPPED] == (0, Decimal("0"))
    assert stats.position == log.records[-1].position


def test_out_of_order_or_orphan_events_are_refused() -> None:
    log = Log()
    placed(log)
    log.record("a", OrderCancelled(reason="x"))
    with pytest.raises(InvalidChange):
        fold_views(log.decoded()[1:])
    with pytest.raises(InvalidChange):
        fold_views(list(reversed(log.decoded())))


@pytest.mark.parametrize(
    ("amount", "units", "scale"),
    [
        ("25.00", 2500, 2),
        ("25", 2500, 2),
        ("0", 0, 2),
        ("19.999", 19999, 3),
        ("1E+3", 100000, 2),
        ("0.0000001", 1, 7),
    ],
)
def test_money_units_are_exact(amount: str, units: int, scale: int) -> None:
    assert money_units(Decimal(amount)) == (units, scale)
    assert Decimal(units).scaleb(-scale) == Decimal(amount)


def test_unknown_event_types_only_move_the_version() -> None:
    log = Log()
    placed(log)
    record = log.records[0]
    stranger = replace(record, type="LoyaltyPointsGranted", version=2, position=record.position + 1)
    change = change_of(decode_record(stranger))
    assert change.kind is ChangeKind.TOUCH
    view = fold_views([*log.decoded(), decode_record(stranger)])["a"]
    assert view.version == 2
    assert view.total == Decimal("6.00")
