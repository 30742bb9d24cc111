"""Session-wide clean-up shared by every suite."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.postgres_db import created_session_database, drop_database


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_session_database() -> Iterator[None]:
    """Drop the throwaway PostgreSQL database when the session ends (if a test made one)."""
    yield
    url = created_session_database()
    if url is not None:
        asyncio.run(drop_database(url))
