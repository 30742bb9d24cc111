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

from application.codec import item_from_wire, item_to_wire
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
        state = OrderState(
            id=_text(state_raw, "id"),
            customer_id=_text(state_raw, "customerId"),
            status=OrderStatus(_text(state_raw, "status")),
            items=tuple(item_from_wire(item) for item in state_raw["items"]),
            total=Decimal(_text(state_raw, "total")),
            tracking_id=_optional_text(state_raw, "trackingId"),
            carrier=_optional_text(state_raw, "carrier"),
            version=_whole(state_raw, "version"),
        )
        snapshot = Snapshot(
            state=state,
            version=_whole(raw, "version"),
            last_event_id=_text(raw, "lastEventId"),
            max_occurred_at=datetime.fromisoformat(_text(raw, "maxOccurredAt")),
        )
    except (KeyError, TypeError, ValueError, InvalidOperation) as error:
        raise UnusableSnapshot(f"unreadable snapshot: {error!r}") from error
    if snapshot.version < 1 or state.version != snapshot.version:
        raise UnusableSnapshot(f"snapshot at {snapshot.version} holds state {state.version}")
    if snapshot.max_occurred_at.tzinfo is None:
        raise UnusableSnapshot("maxOccurredAt has no offset")
    return snapshot
