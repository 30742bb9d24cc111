"""Takes snapshots after appends: best-effort, in the background, never on a command's path.

The command handler calls `after_append` once its events are durably written; when the policy says
a snapshot is due, a background task folds the order (from its previous snapshot, so it reads only
the events since) and stores the result. A failure is logged and forgotten: the next due append
tries again, and loads stay correct without any snapshot.
"""

from __future__ import annotations

import asyncio
import logging

from application.repository import LoadedOrder, OrderRepository
from application.snapshot import SnapshotPolicy
from application.snapshots import SnapshotStore

logger = logging.getLogger(__name__)

CLOSE_GRACE_SECONDS = 2.0
"""How long `close` lets snapshots in flight finish before cancelling them."""


class Snapshotter:
    """Schedules snapshot writes; at most one in flight per order."""

    def __init__(
        self, repository: OrderRepository, snapshots: SnapshotStore, policy: SnapshotPolicy
    ) -> None:
        self._repository = repository
        self._snapshots = snapshots
        self._policy = policy
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    @property
    def policy(self) -> SnapshotPolicy:
        """When snapshots are taken."""
        return self._policy

    def after_append(self, order_id: str, loaded: LoadedOrder, version: int) -> bool:
        """The order, loaded as `loaded`, is now at `version`: snapshot it if due (at once).
        Returns whether a snapshot (at `version` or later) was scheduled."""
        if self._closed or order_id in self._in_flight:
            # One in flight covers this append too, or the next due append will.
            return False
        if not self._policy.is_due(version=version, snapshot_version=loaded.snapshot_version):
            return False
        task = asyncio.create_task(self._take(order_id), name=f"snapshot-{order_id}")
        self._in_flight[order_id] = task
        task.add_done_callback(lambda _: self._in_flight.pop(order_id, None))
        return True

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
