"""Pure mapping from decoded events to view changes, and the reference fold of the views.

`change_of` turns an event into a `ViewChange`: what the Lua script is told to do. `apply_change` is
the same step in Python, the specification the script mirrors (the property tests hold the two
equal). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from application.codec import DecodedEvent
from domain.events import (
    ItemAdded,
    ItemRemoved,
    LineItem,
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
    PaymentTaken,
    order_id_of,
)
from projections.views import DashboardStats, OrderView, StatsDelta, StatusStats

MIN_MONEY_SCALE = 2
"""Revenue counters are integers of 10**-scale; two places at least, more when a total has them."""


class ChangeKind(StrEnum):
    """What an event does to a view; the Lua script switches on these names."""

    PLACED = "placed"
    STATUS = "status"
    SHIPPED = "shipped"
    ADD = "add"
    REMOVE = "remove"
    TOUCH = "touch"  # an event type this code does not know: only the version moves


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewChange:
    """One event's effect on its order's view, independent of the view's current state."""

    order_id: str
    version: int
    position: int
    occurred_at: datetime
    kind: ChangeKind
    customer_id: str = ""
    items: tuple[LineItem, ...] = ()  # PLACED: every line; ADD: the added one
    product_id: str = ""  # REMOVE
    total: Decimal | None = None  # PLACED, ADD, REMOVE: the order's new total
    status: OrderStatus | None = None  # STATUS
    tracking_id: str | None = None  # SHIPPED
    carrier: str | None = None  # SHIPPED


class InvalidChange(ValueError):
    """The change cannot follow the view (e.g. a first event that is not `OrderPlaced`)."""


def money_units(amount: Decimal) -> tuple[int, int]:
    """`amount` as an exact integer count of 10**-scale units, scale >= MIN_MONEY_SCALE."""
    text = str(amount)
    if "E" not in text:  # the usual plain form, read without Decimal arithmetic (hot path)
        whole, _, fraction = text.partition(".")
        scale = max(MIN_MONEY_SCALE, len(fraction))
        return int(whole + fraction.ljust(scale, "0")), scale
    exponent = amount.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    scale = max(MIN_MONEY_SCALE, places)
    return int(amount.scaleb(scale)), scale


def change_of(decoded: DecodedEvent) -> ViewChange:
    """The view change one decoded order event makes."""
    record = decoded.record
    order_id = order_id_of(record.stream)
    version, position, at = record.version, record.position, decoded.occurred_at
    # built directly rather than with dataclasses.replace: this runs for every projected event
    match decoded.event:
        case OrderPlaced() as e:
            return ViewChange(
                order_id=order_id, version=version, position=position, occurred_at=at,
                kind=ChangeKind.PLACED, customer_id=e.customer_id, items=e.items, total=e.total,
            )  # fmt: skip
        case PaymentTaken():
            return ViewChange(
                order_id=order_id, version=version, position=position, occurred_at=at,
                kind=ChangeKind.STATUS, status=OrderStatus.PAID,
            )  # fmt: skip
        case OrderCancelled():
            return ViewChange(
                order_id=order_id, version=version, position=position, occurred_at=at,
                kind=ChangeKind.STATUS, status=OrderStatus.CANCELLED,
            )  # fmt: skip
        case OrderShipped() as e:
            return ViewChange(
                order_id=order_id, version=version, position=position, occurred_at=at,
                kind=ChangeKind.SHIPPED, tracking_id=e.tracking_id, carrier=e.carrier,
            )  # fmt: skip
        case ItemAdded() as e:
            return ViewChange(
                order_id=order_id, version=version, position=position, occurred_at=at,
                kind=ChangeKind.ADD, items=(e.item,), total=e.total,
            )  # fmt: skip
        case ItemRemoved() as e:
            return ViewChange(
                order_id=order_id, version=version, position=position, occurred_at=at,
                kind=ChangeKind.REMOVE, product_id=e.product_id, total=e.total,
            )  # fmt: skip
        case None:
            return ViewChange(
                order_id=order_id, version=version, position=position, occurred_at=at,
                kind=ChangeKind.TOUCH,
            )  # fmt: skip


def _item_count(items: tuple[LineItem, ...]) -> int:
    return sum(item.qty for item in items)


def apply_change(view: OrderView | None, change: ViewChange) -> OrderView:
    """The view after `change`, which must be the next version (the caller checks versions)."""
    if view is None:
        if change.kind is not ChangeKind.PLACED or change.total is None:
            raise InvalidChange(f"order {change.order_id!r} starts with {change.kind}")
        return OrderView(
            id=change.order_id,
            customer_id=change.customer_id,
            status=OrderStatus.PENDING,
            items=change.items,
            item_count=_item_count(change.items),
            total=change.total,
            tracking_id=None,
            carrier=None,
            created_at=change.occurred_at,
            updated_at=change.occurred_at,
            version=change.version,
            position=change.position,
            placed_position=change.position,
        )
    moved = replace(
        view, updated_at=change.occurred_at, version=change.version, position=change.position
    )
    match change.kind:
        case ChangeKind.PLACED:
            raise InvalidChange(f"order {change.order_id!r} placed twice")
        case ChangeKind.STATUS:
            assert change.status is not None
            return replace(moved, status=change.status)
        case ChangeKind.SHIPPED:
            return replace(
                moved,
                status=OrderStatus.SHIPPED,
                tracking_id=change.tracking_id,
                carrier=change.carrier,
            )
        case ChangeKind.ADD | ChangeKind.REMOVE:
            assert change.total is not None
            if change.kind is ChangeKind.ADD:
                items = view.items + change.items
            else:
                items = tuple(i for i in view.items if i.product_id != change.product_id)
            return replace(moved, items=items, item_count=_item_count(items), total=change.total)
        case ChangeKind.TOUCH:
            return moved


def evolve_view(view: OrderView | None, decoded: DecodedEvent) -> OrderView:
    """The view after one decoded event: `apply_change` of its `change_of`."""
    return apply_change(view, change_of(decoded))


def stats_delta(before: OrderView | None, after: OrderView) -> StatsDelta:
    """How the dashboard counters move when a view goes from `before` to `after`."""
    counts: dict[OrderStatus, int] = {}
    revenue: dict[OrderStatus, Decimal] = {}
    if before is not None:
        counts[before.status] = counts.get(before.status, 0) - 1
        revenue[before.status] = revenue.get(before.status, Decimal(0)) - before.total
    counts[after.status] = counts.get(after.status, 0) + 1
    revenue[after.status] = revenue.get(after.status, Decimal(0)) + after.total
    return StatsDelta(
        new_orders=1 if before is None else 0,
        counts={s: n for s, n in counts.items() if n},
        revenue={s: r for s, r in revenue.items() if r},
    )


def fold_views(events: Iterable[DecodedEvent]) -> dict[str, OrderView]:
    """Every order's view after the events, in log order: the reference the store must equal."""
    views: dict[str, OrderView] = {}
    for decoded in events:
        change = change_of(decoded)
        current = views.get(change.order_id)
        if change.version != (current.version if current else 0) + 1:
            raise InvalidChange(f"order {change.order_id!r}: version {change.version} out of order")
        views[change.order_id] = apply_change(current, change)
    return views


def fold_stats(views: Iterable[OrderView]) -> DashboardStats:
    """The dashboard stats of a set of views (position: the highest one they reflect)."""
    counts = dict.fromkeys(OrderStatus, 0)
    revenue = {status: Decimal("0.00") for status in OrderStatus}
    total = 0
    position = 0
    for view in views:
        total += 1
        counts[view.status] += 1
        revenue[view.status] += view.total
        position = max(position, view.position)
    return DashboardStats(
        total_orders=total,
        by_status=tuple(
            StatusStats(status=s, count=counts[s], revenue=revenue[s]) for s in OrderStatus
        ),
        position=position,
    )
