"""The orders this process decided on recently: a bounded cache that spares the command path a read.

Most commands act on an order this process has just written (place, then pay, then ship). After an
append the handler knows the order's exact state and version without asking the store, so it keeps
them here and the next command on the order decides at once.

`RecentOrders` wraps the repository the handler reads through: asked for a guess it answers from
memory, and every fresh load and every append refreshes the memory. The handler only knows that a
load may be a guess (`LoadedOrder.fresh` is False).

The cache is only ever a guess, safe because every append carries the version the guess was made
at: if another process (EventStoreDB mode) or another task moved the order on, the append is
refused (`WrongExpectedVersion`) and the handler reads the store and decides again. A refusal
decided on a guess is likewise confirmed against the store before it is answered. So a stale entry
costs one retry, never a wrong answer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

from application.repository import LoadedOrder, Orders

DEFAULT_CAPACITY = 10_000
"""Orders remembered per process. An entry is one `OrderState` (a few hundred bytes for a typical
order), so the default bounds the cache to a few megabytes."""


class RecentOrders:
    """Orders read through `orders`, remembered in a least-recently-used map from order id to the
    order as this process last saw it."""

    def __init__(self, orders: Orders, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._inner = orders
        self._capacity = capacity
        self._orders: OrderedDict[str, LoadedOrder] = OrderedDict()

    async def load(self, order_id: str, *, guess: bool = False) -> LoadedOrder:
        """With `guess`, the remembered order if there is one; else a fresh load, remembered."""
        if guess:
            remembered = self.get(order_id)
            if remembered is not None:
                return replace(remembered, fresh=False)
        loaded = await self._inner.load(order_id)
        known = self._orders.get(order_id)
        if known is not None and known.version > loaded.version:
            # Newer than the store (a task's append finished meanwhile, or the stream was
            # replaced): the store decides, so the memory keeps neither.
            self.forget(order_id)
        else:
            self.remember(order_id, loaded)
        return loaded

    def appended(self, order_id: str, after: LoadedOrder | None) -> None:
        """Remember the order as appended; None: the append was not the one decided (an
        idempotent retry's original), so nothing is known."""
        self._inner.appended(order_id, after)
        if after is None:
            self.forget(order_id)
        else:
            self.remember(order_id, after)

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
