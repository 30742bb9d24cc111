"""The orders this process decided on recently: a bounded cache that spares the command path a read.

Most commands act on an order this process has just written (place, then pay, then ship). After an
append the handler knows the order's exact state and version without asking the store, so it keeps
them here and the next command on the order decides at once.

The cache is only ever a guess, safe because every append carries the version the guess was made
at: if another process (EventStoreDB mode) or another task moved the order on, the append is
refused (`WrongExpectedVersion`) and the handler reads the store and decides again. A refusal
decided on a guess is likewise confirmed against the store before it is answered. So a stale entry
costs one retry, never a wrong answer.
"""

from __future__ import annotations

from collections import OrderedDict

from eventstore.repository import LoadedOrder

DEFAULT_CAPACITY = 10_000
"""Orders remembered per process. An entry is one `OrderState` (a few hundred bytes for a typical
order), so the default bounds the cache to a few megabytes."""


class RecentOrders:
    """A least-recently-used map from order id to the order as this process last saw it."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._capacity = capacity
        self._orders: OrderedDict[str, LoadedOrder] = OrderedDict()

    def __len__(self) -> int:
        return len(self._orders)

    def get(self, order_id: str) -> LoadedOrder | None:
        """The order as last seen (a guess, possibly stale), or None."""
        loaded = self._orders.get(order_id)
        if loaded is not None:
            self._orders.move_to_end(order_id)
        return loaded

    def remember(self, order_id: str, loaded: LoadedOrder) -> None:
        """Keep `loaded` unless a newer version is known already: tasks finish out of order, and
        a version only ever grows, so the higher one is the fresher."""
        if loaded.state is None or self._capacity == 0:
            # "No such order" is never cached: an order may be placed by anyone at any moment.
            return
        known = self._orders.get(order_id)
        if known is not None and known.version > loaded.version:
            return
        self._orders[order_id] = loaded
        self._orders.move_to_end(order_id)
        while len(self._orders) > self._capacity:
            self._orders.popitem(last=False)

    def forget(self, order_id: str) -> None:
        """Drop the guess about `order_id` (it proved stale)."""
        self._orders.pop(order_id, None)
