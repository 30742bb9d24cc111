"""A process's projector workers: `orders serve` runs them beside the API (`service`), `orders
project` on their own (`api.wiring.cli`)."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Self

from eventstore.group_worker import RunnerState
from eventstore.port import StoreWithGroups
from projections.redis_store import RedisViewStore
from projections.runner import ProjectorRunner, RunnerSettings

logger = logging.getLogger(__name__)


class ProjectorPool:
    """`workers` runners sharing the group, started and stopped together:

    async with ProjectorPool(store, views, workers=2) as pool:
        ...  # pool.healthy, pool.runners
    """

    def __init__(
        self,
        store: StoreWithGroups,
        views: RedisViewStore,
        *,
        workers: int = 1,
        settings: RunnerSettings | None = None,
    ) -> None:
        self.runners = [ProjectorRunner(store, views, settings=settings) for _ in range(workers)]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def healthy(self) -> bool:
        """Every worker is running (not catching up, failing or stopped)."""
        return all(runner.state is RunnerState.RUNNING for runner in self.runners)

    def start(self) -> None:
        """Start every worker."""
        self._tasks = [
            asyncio.create_task(runner.run(self._stop), name=f"projector-{runner.worker_id}")
            for runner in self.runners
        ]
        if self.runners:
            logger.info("event=projectors_started workers=%d", len(self.runners))

    async def stop(self) -> None:
        """Stop every worker and wait until each has stopped."""
        self._stop.set()
        tasks, self._tasks = self._tasks, []
        await asyncio.gather(*tasks)
        if tasks:
            logger.info("event=projectors_stopped workers=%d", len(tasks))

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
