"""Takes snapshots after appends: best-effort, in the background, never on a command's path.

The command handler asks whether an append makes a snapshot `due`, and once its events are
durably written asks to `take` it: a background task folds the order (from its previous snapshot,
so it reads only the events since) and stores the result. A failure is logged and forgotten: the
next due append tries again, and loads stay correct without any snapshot.
"""

from __future__ import annotations

import asyncio
import logging

from application.repository import LoadedOrder, OrderRepository
from application.snapshot_policy import SnapshotPolicy
from application.snapshot_store import SnapshotStore

logger = logging.getLogger(__name__)

CLOSE_GRACE_SECONDS = 2.0
"""How long `close` lets snapshots in flight finish before cancelling them."""


class Snapshotter:
    """Schedules snapshot writes; at most one in flight per order. An append that is due while
    one is in flight is not lost: once it ends, another is taken, so an order's snapshot keeps up
    with its commands however slow the store is."""

    def __init__(
        self, repository: OrderRepository, snapshots: SnapshotStore, policy: SnapshotPolicy
    ) -> None:
        self._repository = repository
        self._snapshots = snapshots
        self._policy = policy
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._scheduled_at: dict[str, int] = {}  # the version each one in flight was due at
        self._again: dict[str, int] = {}  # due again while one was in flight, at this version
        self._closed = False

    @property
    def policy(self) -> SnapshotPolicy:
        """When snapshots are taken."""
        return self._policy

    def due(self, order_id: str, loaded: LoadedOrder, version: int) -> bool:
        """Whether the order, loaded as `loaded`, is due a snapshot once an append takes it to
        `version` (a snapshot scheduled already counts as taken)."""
        if self._closed:
            return False
        newest = max(loaded.snapshot_version, self._scheduled_at.get(order_id, 0))
        return self._policy.is_due(version=version, snapshot_version=newest)

    def take(self, order_id: str, version: int) -> None:
        """Snapshot the order, now durably at `version`: at once, or right after the snapshot
        in flight."""
        if self._closed:
            return
        if order_id in self._in_flight:
            self._again[order_id] = version
            return
        self._start(order_id, version)

    def _start(self, order_id: str, version: int) -> None:
        task = asyncio.create_task(self._take(order_id), name=f"snapshot-{order_id}")
        self._in_flight[order_id] = task
        self._scheduled_at[order_id] = version
        task.add_done_callback(lambda _: self._finished(order_id))

    def _finished(self, order_id: str) -> None:
        self._in_flight.pop(order_id, None)
        again = self._again.pop(order_id, None)
        if again is not None and not self._closed:
            self._start(order_id, again)  # it loads the order as it is now
            return
        self._scheduled_at.pop(order_id, None)

    async def _take(self, order_id: str) -> None:
        try:
            snapshot = await self._repository.snapshot(order_id)
            if snapshot is not None and await self._snapshots.save(snapshot):
                logger.debug("event=snapshot_taken order=%s version=%d", order_id, snapshot.version)
        except Exception:
            # Best-effort by design: a snapshot is a cache, and a failed one must never surface
            # in a command. Logged with its traceback so a persistent failure is visible.
            logger.exception("event=snapshot_failed order=%s", order_id)

    async def drain(self) -> None:
        """Wait for every snapshot in flight (tests, and a clean shutdown)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop scheduling; let writes in flight finish briefly, then cancel the rest."""
        self._closed = True
        pending = list(self._in_flight.values())
        if not pending:
            return
        _, still_running = await asyncio.wait(pending, timeout=CLOSE_GRACE_SECONDS)
        for task in still_running:
            task.cancel()
        if still_running:
            await asyncio.gather(*still_running, return_exceptions=True)
            logger.info("event=snapshots_cancelled count=%d", len(still_running))
