"""Field names of the read model's Redis hashes and of the change message, in one place.

The Python code reads and writes these shapes through the constants here; the Lua scripts get the
same names as tables (`ORDER.version`, `STATS.position`, ...) prepended when they are loaded
(`projections.lua_scripts`), so no script spells a field name itself. Renaming a field here
renames it on both sides; a script naming a field this module does not define is refused when it
is loaded (and by tests/integration/projections/test_lua_names.py).
"""

from __future__ import annotations

from typing import Final


class OrderFields:
    """The order view's hash, `{ns}:o:{order id}`: one field per `OrderView` field, plus the
    total as integer units of 10**-scale (the revenue counters move by those)."""

    ID: Final = "id"
    CUSTOMER: Final = "cust"
    STATUS: Final = "status"
    ITEMS: Final = "items"  # a JSON array, each line as `item_to_wire` writes it
    ITEM_COUNT: Final = "count"
    TOTAL: Final = "total"
    UNITS: Final = "units"
    SCALE: Final = "scale"
    TRACKING_ID: Final = "track"
    CARRIER: Final = "carrier"
    CREATED: Final = "created"
    UPDATED: Final = "updated"
    VERSION: Final = "version"
    POSITION: Final = "pos"
    PLACED_POSITION: Final = "ppos"


class StatsFields:
    """The dashboard's counters, `{ns}:stats`: orders placed, the highest position applied, a
    count per status (`n:PAID`) and revenue per status and scale (`r:PAID:2`, in units)."""

    ORDERS: Final = "orders"
    POSITION: Final = "pos"
    COUNT_PREFIX: Final = "n:"
    REVENUE_PREFIX: Final = "r:"
    REVENUE_SEPARATOR: Final = ":"


class MetaFields:
    """A namespace's state, `{ns}:meta`: whether it was caught up once ("1") and its watermark
    (the padded position every event at or before is in the views)."""

    READY: Final = "ready"
    WATERMARK: Final = "wm"


class ChangeFields:
    """The JSON message the apply script publishes on `{ns}:changes` for every applied change;
    `view` is the order's hash as it was right after, `status` its status after the change and
    `previousStatus` before it (absent for a placement)."""

    NAMESPACE: Final = "ns"
    ORDER_ID: Final = "id"
    VERSION: Final = "version"
    CUSTOMER_ID: Final = "customerId"
    STATUS: Final = "status"
    PREVIOUS_STATUS: Final = "previousStatus"
    POSITION: Final = "position"
    VIEW: Final = "view"
    TRACEPARENT: Final = "traceparent"  # the projector's apply span (tracing on), for the push


def count_field(status: str) -> str:
    """The stats field counting the orders in `status`."""
    return f"{StatsFields.COUNT_PREFIX}{status}"


def revenue_field(status: str, scale: int) -> str:
    """The stats field summing, in units of 10**-scale, the totals of the orders in `status`."""
    return f"{StatsFields.REVENUE_PREFIX}{status}{StatsFields.REVENUE_SEPARATOR}{scale}"


def parse_revenue_field(name: str) -> tuple[str, int]:
    """The status and scale of a `revenue_field` name."""
    status, scale = name[len(StatsFields.REVENUE_PREFIX) :].split(StatsFields.REVENUE_SEPARATOR)
    return status, int(scale)
