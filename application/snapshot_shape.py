"""Snapshots of an order's folded state: the value and its stored (JSON) shape.

A snapshot is a cache of `fold(events[:version])`, never a fact: loading may use it to skip the
events it covers, and deleting it changes no result. It is trusted only when it was written by code
that folds the same way (`STATE_SHAPE_VERSION` and the event schema version both match); one taken
by older (or newer) code is ignored, and the next snapshot replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from application.codec import item_from_wire, item_to_wire, slot_setter
from domain.events import OrderStatus
from domain.order import OrderState
from domain.upcasting import CURRENT_SCHEMA_VERSION

STATE_SHAPE_VERSION = 2
"""Bump when `OrderState` (or `LineItem`) changes, or when the same events would fold to a
different state (a changed `evolve` or upcaster): every stored snapshot then stops being trusted.
`tests/integration/snapshots` pins the fields this version stands for: a change without a bump fails
there."""


class UnusableSnapshot(ValueError):
    """A stored snapshot that must not be trusted: taken by other code, or not a snapshot at all."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """An order's state after its first `version` events.

    `last_event_id` is the id of the event at `version`: loading checks it against the stream, so
    a snapshot of a stream that was deleted and written again is never trusted.
    `max_occurred_at` is the latest `occurredAt` among those events: a time-travel query as of a
    moment may start from the snapshot only if every event it covers happened by then.
    """

    state: OrderState
    version: int
    last_event_id: str
    max_occurred_at: datetime


def snapshot_to_dict(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot as a JSON-ready object (money as decimal strings)."""
    state = snapshot.state
    return {
        "shapeVersion": STATE_SHAPE_VERSION,
        "schemaVersion": CURRENT_SCHEMA_VERSION,
        "version": snapshot.version,
        "lastEventId": snapshot.last_event_id,
        "maxOccurredAt": snapshot.max_occurred_at.isoformat(),
        "state": {
            "id": state.id,
            "customerId": state.customer_id,
            "status": state.status.value,
            "items": [item_to_wire(item) for item in state.items],
            "total": str(state.total),
            "trackingId": state.tracking_id,
            "carrier": state.carrier,
            "version": state.version,
        },
    }


# Every snapshot load builds one state and one snapshot: set their slots directly, as the fold
# does (`domain.order._moved`) and as `copy` does, each by name, instead of through a frozen
# dataclass's __init__ (a tenth of a snapshot load). tests/unit/test_fast_values.py holds the
# result equal to the constructors'.
_new = object.__new__
_set_id = slot_setter(OrderState, "id")
_set_customer_id = slot_setter(OrderState, "customer_id")
_set_status = slot_setter(OrderState, "status")
_set_items = slot_setter(OrderState, "items")
_set_total = slot_setter(OrderState, "total")
_set_tracking_id = slot_setter(OrderState, "tracking_id")
_set_carrier = slot_setter(OrderState, "carrier")
_set_state_version = slot_setter(OrderState, "version")
_set_state = slot_setter(Snapshot, "state")
_set_version = slot_setter(Snapshot, "version")
_set_last_event_id = slot_setter(Snapshot, "last_event_id")
_set_max_occurred_at = slot_setter(Snapshot, "max_occurred_at")
_STATUSES = {status.value: status for status in OrderStatus}


def _status(raw: dict[str, Any], key: str) -> OrderStatus:
    status = _STATUSES.get(_text(raw, key))
    if status is None:
        raise ValueError(f"{key} is not an order status")
    return status


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value


def _optional_text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key} must be a string or null")
    return value


def _whole(raw: dict[str, Any], key: str) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} must be an integer")
    return value


def snapshot_from_dict(raw: object) -> Snapshot:
    """The snapshot stored as `raw`. Raises `UnusableSnapshot` for one this code must not trust
    (another shape or schema version) or cannot read."""
    if not isinstance(raw, dict):
        raise UnusableSnapshot("a snapshot is a JSON object")
    shape, schema = raw.get("shapeVersion"), raw.get("schemaVersion")
    if shape != STATE_SHAPE_VERSION or schema != CURRENT_SCHEMA_VERSION:
        raise UnusableSnapshot(
            f"taken at shape {shape!r} / schema {schema!r}, this code folds at shape "
            f"{STATE_SHAPE_VERSION} / schema {CURRENT_SCHEMA_VERSION}"
        )
    try:
        state_raw = raw["state"]
        state: OrderState = _new(OrderState)
        _set_id(state, _text(state_raw, "id"))
        _set_customer_id(state, _text(state_raw, "customerId"))
        _set_status(state, _status(state_raw, "status"))
        _set_items(state, tuple([item_from_wire(item) for item in state_raw["items"]]))
        _set_total(state, Decimal(_text(state_raw, "total")))
        _set_tracking_id(state, _optional_text(state_raw, "trackingId"))
        _set_carrier(state, _optional_text(state_raw, "carrier"))
        _set_state_version(state, _whole(state_raw, "version"))
        snapshot: Snapshot = _new(Snapshot)
        _set_state(snapshot, state)
        _set_version(snapshot, _whole(raw, "version"))
        _set_last_event_id(snapshot, _text(raw, "lastEventId"))
        _set_max_occurred_at(snapshot, datetime.fromisoformat(_text(raw, "maxOccurredAt")))
    except (KeyError, TypeError, ValueError, InvalidOperation) as error:
        raise UnusableSnapshot(f"unreadable snapshot: {error!r}") from error
    if snapshot.version < 1 or state.version != snapshot.version:
        raise UnusableSnapshot(f"snapshot at {snapshot.version} holds state {state.version}")
    if snapshot.max_occurred_at.tzinfo is None:
        raise UnusableSnapshot("maxOccurredAt has no offset")
    return snapshot
