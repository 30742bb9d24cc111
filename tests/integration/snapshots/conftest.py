"""Fixtures: `store` over every adapter (the contract suite's list)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventstore.port import EventStore
from tests.contract.conftest import ADAPTERS


@pytest.fixture(params=list(ADAPTERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    """A ready store of each adapter in turn: embedded SQLite, EventStoreDB over gRPC."""
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened
