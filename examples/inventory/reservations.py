"""What one order event means for stock: pure, no I/O.

A product's reservation grows with OrderPlaced and ItemAdded and shrinks with ItemRemoved (the
order's whole line of that product) and OrderCancelled (all of the order's lines). Other events
leave stock alone: a shipped order's items stay reserved until fulfilment takes them out of stock,
which is not this example's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LineChange:
    """Reserve (`qty` > 0) or release (`qty` < 0) `qty` of a product for an order."""

    order_id: str
    product_id: str
    qty: int


def changes_of(envelope: Mapping[str, Any], held: Mapping[str, int]) -> list[LineChange]:
    """The reservation changes of one published event. `held` is what the order holds now, by
    product (releases need it: ItemRemoved and OrderCancelled do not repeat the quantities)."""
    order_id = str(envelope["orderId"])
    data = envelope["data"]
    match envelope["type"]:
        case "OrderPlaced":
            return [LineChange(order_id, str(i["id"]), int(i["qty"])) for i in data["items"]]
        case "ItemAdded":
            line = data["item"]
            return [LineChange(order_id, str(line["id"]), int(line["qty"]))]
        case "ItemRemoved":
            product = str(data["productId"])
            qty = held.get(product, 0)
            return [LineChange(order_id, product, -qty)] if qty else []
        case "OrderCancelled":
            return [LineChange(order_id, p, -qty) for p, qty in sorted(held.items()) if qty]
        case _:
            return []
