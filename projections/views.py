"""The read model's values: an order view, the dashboard's stats, a page of orders, a status.

Frozen values only; `mapping` computes them, `redis_store` persists them and `queries` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from domain.events import LineItem, OrderStatus
from eventstore.group_worker import RunnerState


class ViewsUnavailable(RuntimeError):
    """The views cannot answer truthfully now: Redis holds none, or they are being refilled
    after a loss and have not caught up to the log yet. Retry shortly."""


class ChangesMissed(RuntimeError):
    """A live feed lost changes it cannot replay (Redis went away, or the listener fell behind):
    the subscriber must re-read the views and subscribe again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderView:
    """The order as the read model holds it: every field of the contract's `Order`.

    `item_count` is the sum of the lines' quantities (three of one product count as three items),
    which is what a shopper means by "items in the order". `placed_position` orders the indexes
    (newest first) and `position` is the position of the last event the view reflects.
    """

    id: str
    customer_id: str
    status: OrderStatus
    items: tuple[LineItem, ...]
    item_count: int
    total: Decimal
    tracking_id: str | None
    carrier: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    position: int
    placed_position: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusStats:
    """How many orders are in one status now, and the sum of their totals."""

    status: OrderStatus
    count: int
    revenue: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardStats:
    """Totals over all orders; `position` is the highest log position the stats reflect."""

    total_orders: int
    by_status: tuple[StatusStats, ...]
    position: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPage:
    """One page of orders, newest first; `end_cursor` continues after the last one.

    `total_count` is how many orders the filtered list holds now, over all its pages;
    `has_previous_page` whether it holds any at or before the `after` cursor (newer ones).
    """

    orders: tuple[OrderView, ...]
    cursors: tuple[str, ...]
    has_next_page: bool
    end_cursor: str | None
    has_previous_page: bool = False
    total_count: int = 0

    @property
    def start_cursor(self) -> str | None:
        """The cursor of the page's first order (None: an empty page)."""
        return self.cursors[0] if self.cursors else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectionStatus:
    """What the `projections` query reports for one projection (or one worker of it)."""

    name: str
    position: int | None
    lag: int
    state: RunnerState
    parked: int
    last_error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One projected change as the live feed carries it: `status` is the order's status after
    it, `previous_status` before it (None: the change placed the order)."""

    namespace: str
    order_id: str
    version: int
    customer_id: str
    status: OrderStatus
    position: int
    view: OrderView | None = None  # the view this change made (None: re-read the hash)
    previous_status: OrderStatus | None = None
    traceparent: str | None = None  # the span that applied it, when the projector traces


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsDelta:
    """How one event moves the dashboard counters (revenue keyed by status)."""

    new_orders: int = 0
    counts: dict[OrderStatus, int] = field(default_factory=dict)
    revenue: dict[OrderStatus, Decimal] = field(default_factory=dict)
