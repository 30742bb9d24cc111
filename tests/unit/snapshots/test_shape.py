"""The snapshot's stored shape and the policy: pure, no I/O."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from application.snapshot_policy import SnapshotPolicy
from application.snapshot_shape import (
    STATE_SHAPE_VERSION,
    Snapshot,
    UnusableSnapshot,
    snapshot_from_dict,
    snapshot_to_dict,
)
from domain.events import LineItem, OrderStatus
from domain.order import OrderState

SNAPSHOT = Snapshot(
    state=OrderState(
        id="o-1",
        customer_id="c-1",
        status=OrderStatus.SHIPPED,
        items=(LineItem(product_id="p", name="Pen", price=Decimal("2.50"), qty=3),),
        total=Decimal("7.50"),
        tracking_id="T-1",
        carrier="UPS",
        version=4,
    ),
    version=4,
    last_event_id="7d8f5a0c-0000-4000-8000-000000000004",
    max_occurred_at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
)


def state_shape_fields() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The field names of `OrderState` and `LineItem`: what `STATE_SHAPE_VERSION` stands for."""
    return (
        tuple(f.name for f in dataclasses.fields(OrderState)),
        tuple(f.name for f in dataclasses.fields(LineItem)),
    )


def test_a_snapshot_round_trips_exactly() -> None:
    stored = snapshot_to_dict(SNAPSHOT)

    assert stored["shapeVersion"] == STATE_SHAPE_VERSION
    assert stored["state"]["total"] == "7.50"
    assert snapshot_from_dict(stored) == SNAPSHOT


def test_the_shape_version_is_bumped_when_the_state_changes() -> None:
    # If this fails, OrderState or LineItem changed: bump STATE_SHAPE_VERSION (so snapshots taken
    # by the old code are ignored) and then update the pinned fields here.
    state_fields = ("id", "customer_id", "status", "items", "total", "tracking_id", "carrier")
    pinned = {
        1: ((*state_fields, "version"), ("product_id", "name", "price", "qty")),
        # 2: line items stored in the events' wire shape (`id`, not `productId`).
        2: ((*state_fields, "version"), ("product_id", "name", "price", "qty")),
    }
    assert state_shape_fields() == pinned[STATE_SHAPE_VERSION]


@pytest.mark.parametrize(
    "change",
    [
        {"shapeVersion": STATE_SHAPE_VERSION - 1},
        {"shapeVersion": STATE_SHAPE_VERSION + 1},
        {"shapeVersion": None},
        {"schemaVersion": 1},
        {"version": 3},
        {"version": 0},
        {"lastEventId": 5},
        {"maxOccurredAt": "2024-05-01T12:30:00"},
        {"maxOccurredAt": "yesterday"},
        {"state": {"id": "o-1"}},
    ],
)
def test_snapshots_from_other_code_or_damaged_are_unusable(change: dict[str, Any]) -> None:
    stored = {**snapshot_to_dict(SNAPSHOT), **change}

    with pytest.raises(UnusableSnapshot):
        snapshot_from_dict(stored)


def test_a_non_object_is_unusable() -> None:
    with pytest.raises(UnusableSnapshot):
        snapshot_from_dict([1, 2])


@pytest.mark.parametrize(
    ("version", "snapshot_version", "due"),
    [(49, 0, False), (50, 0, True), (51, 0, True), (99, 50, False), (100, 50, True), (7, 7, False)],
)
def test_a_snapshot_is_due_every_n_events_since_the_last(
    version: int, snapshot_version: int, due: bool
) -> None:
    policy = SnapshotPolicy(every=50)

    assert policy.is_due(version=version, snapshot_version=snapshot_version) is due


def test_the_interval_is_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        SnapshotPolicy(every=0)
