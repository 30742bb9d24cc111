"""Session-wide clean-up shared by every suite, and the order files run in."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres_db import created_session_database, drop_database

LONG_FILES = (
    "packaging/test_wheel.py",
    "security/test_ws_memory.py",
    "e2e/test_read_model.py",
    "security/test_settings.py",
    "e2e/test_validation.py",
    "faults/test_start_waiting.py",
    "security/test_matrix.py",
    "contract/test_persistent.py",
    "faults/test_external_redis.py",
    "security/test_fuzz.py",
    "faults/test_replay_memory.py",
    "e2e/test_subscriptions.py",
    "operations/test_metrics.py",
    "security/test_oidc.py",
)
"""The files that took longest (30 s and more each in a `-n 2` run), longest first. Only the
order depends on this list: a file missing from it runs after these, nothing else changes."""


def _rank(path: Path) -> int:
    tests = Path(__file__).parent
    relative = path.relative_to(tests).as_posix() if path.is_relative_to(tests) else ""
    return LONG_FILES.index(relative) if relative in LONG_FILES else len(LONG_FILES)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files run first, each file's tests in their own order. Under xdist's
    `--dist loadfile` (scripts/test) files go to the workers in this order as they become free:
    a long file handed out last would keep one worker busy while the others had nothing left."""
    items.sort(key=lambda item: _rank(item.path))  # stable: the rest keep their order


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_session_database() -> Iterator[None]:
    """Drop the throwaway PostgreSQL database when the session ends (if a test made one)."""
    yield
    url = created_session_database()
    if url is not None:
        asyncio.run(drop_database(url))
