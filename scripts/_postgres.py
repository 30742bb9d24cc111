"""A throwaway PostgreSQL database for the benchmarks, and what its log says about group commit."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import asyncpg

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitStats:
    """Appends and the transactions that committed them (each batch is one transaction, so its
    rows share one `xmin`)."""

    events: int
    appends: int
    commits: int

    @property
    def appends_per_commit(self) -> float:
        """The group-commit factor."""
        return self.appends / self.commits if self.commits else 0.0


def url_of(database: str, admin_url: str = ADMIN_URL) -> str:
    """The URL of `database` on the admin URL's server."""
    return f"{admin_url.rpartition('/')[0]}/{database}"


async def create_database(prefix: str, admin_url: str = ADMIN_URL) -> str:
    """A new empty database; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url_of(name, admin_url)


async def drop_database(url: str, admin_url: str = ADMIN_URL) -> None:
    """Drop the database at `url`."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await conn.close()


async def commit_stats(url: str) -> CommitStats:
    """Events, appends (one stream's events in one transaction) and commits in the log."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS events, count(DISTINCT (xmin::text, stream)) AS appends,"
            " count(DISTINCT xmin::text) AS commits FROM es_events"
        )
    finally:
        await conn.close()
    return CommitStats(events=row["events"], appends=row["appends"], commits=row["commits"])
