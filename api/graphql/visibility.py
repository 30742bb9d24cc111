"""What a customer may see of an order's events: its own order, not the shop's inside.

Staff see every event as stored. A customer reading its own order's events sees the facts of its
order (data, when and in which request each happened) but not who on the staff acted, nor what
staff wrote as a reason: an actor other than the customer itself (or the system) shows as
`"staff"`, a cancellation reason written by staff shows as `STAFF_CANCELLATION_REASON`, and
metadata keys outside the contract's are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.http.auth import Principal
from application.codec import SYSTEM_ACTOR

STAFF_ACTOR = "staff"
"""The actor a customer sees for any actor that is neither itself nor the system."""

STAFF_CANCELLATION_REASON = "Cancelled by the shop."
"""The reason a customer sees for a cancellation staff made (the real one is internal)."""

CUSTOMER_METADATA_KEYS = ("schemaVersion", "occurredAt", "$correlationId", "$causationId", "actor")
"""The metadata keys a customer sees (the contract's); anything else stays internal."""


def _customer(viewer: Principal | None) -> str | None:
    """The customer whose view this is, or None for staff (who see everything)."""
    if viewer is None or viewer.is_staff:
        return None
    return viewer.sub


def _acted_by_other(metadata: Mapping[str, Any], customer: str) -> bool:
    return metadata.get("actor") not in (customer, SYSTEM_ACTOR)


def visible_metadata(metadata: dict[str, Any], viewer: Principal | None) -> dict[str, Any]:
    """An event's metadata as `viewer` may see it (staff: `metadata` itself, not a copy)."""
    customer = _customer(viewer)
    if customer is None:
        return metadata
    shown = {key: metadata[key] for key in CUSTOMER_METADATA_KEYS if key in metadata}
    if "actor" in shown and _acted_by_other(metadata, customer):
        shown["actor"] = STAFF_ACTOR
    return shown


def visible_data(
    event_type: str, data: dict[str, Any], metadata: Mapping[str, Any], viewer: Principal | None
) -> dict[str, Any]:
    """An event's data as `viewer` may see it, in the same shape so clients parse it alike
    (`data` itself when nothing is hidden)."""
    customer = _customer(viewer)
    if customer is None or event_type != "OrderCancelled":
        return data
    if not _acted_by_other(metadata, customer):
        return data
    return {**data, "reason": STAFF_CANCELLATION_REASON}
