"""The inventory example's pure mapping from a published event to reservation changes."""

from __future__ import annotations

from typing import Any

from examples.inventory.reservations import LineChange, changes_of


def envelope(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"eventId": "e", "type": kind, "orderId": "o-1", "data": data}


def line(product: str, qty: int) -> dict[str, Any]:
    return {"id": product, "name": "Thing", "price": "1.00", "qty": qty}


def test_placing_and_adding_reserve_the_quantities() -> None:
    placed = envelope("OrderPlaced", {"items": [line("a", 2), line("b", 1)], "total": "3.00"})
    assert changes_of(placed, {}) == [LineChange("o-1", "a", 2), LineChange("o-1", "b", 1)]
    added = envelope("ItemAdded", {"item": line("c", 4), "total": "7.00"})
    assert changes_of(added, {"a": 2}) == [LineChange("o-1", "c", 4)]


def test_removing_releases_the_orders_line_and_cancelling_all_lines() -> None:
    held = {"a": 2, "b": 1}
    removed = envelope("ItemRemoved", {"productId": "a", "total": "1.00"})
    assert changes_of(removed, held) == [LineChange("o-1", "a", -2)]
    assert changes_of(envelope("ItemRemoved", {"productId": "z", "total": "1"}), held) == []
    cancelled = envelope("OrderCancelled", {"reason": "no"})
    assert changes_of(cancelled, held) == [LineChange("o-1", "a", -2), LineChange("o-1", "b", -1)]


def test_payment_shipping_and_unknown_types_leave_stock_alone() -> None:
    for kind in ("PaymentTaken", "OrderShipped", "SomethingNew"):
        assert changes_of(envelope(kind, {}), {"a": 1}) == []
