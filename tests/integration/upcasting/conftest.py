"""Fixtures: `store` over every adapter (the contract suite's list) and a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventstore.port import StoreWithGroups
from tests.contract.conftest import ADAPTERS
from tests.integration.projections.conftest import (  # noqa: F401  (fixtures, re-exported for pytest)
    embedded_redis_socket,
    prefix,
    redis,
    redis_cluster_url,
    redis_target,
)


@pytest.fixture(params=list(ADAPTERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreWithGroups]:
    """A ready store of each adapter in turn: embedded SQLite, EventStoreDB over gRPC."""
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened
