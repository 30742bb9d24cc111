"""Fixtures shared by the handler and repository tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventstore.embedded import SQLiteEventStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    """A fresh embedded event store in the test's own directory."""
    opened = await SQLiteEventStore.open(tmp_path)
    try:
        yield opened
    finally:
        await opened.close()
