"""DATABASE_URL selects the PostgreSQL store; with ESDB_URL as well, the service refuses to start;
the schema is created and migrated idempotently by the service itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from api.settings.config import Settings
from api.wiring.bootstrap import open_store
from api.wiring.cli import main
from eventstore.persistent.records import settings_to_json
from eventstore.port import NO_STREAM, SubscriptionSettings
from eventstore.postgres import PostgresEventStore, schema
from eventstore.postgres.persistent_tables import PARTITIONS
from eventstore.postgres.schema import MIGRATIONS
from tests.contract.conftest import new_events, unique_stream
from tests.support.postgres_db import fresh_database, session_database_url


def test_both_store_urls_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="ESDB_URL and DATABASE_URL are both set"):
        Settings.from_env({"ESDB_URL": "esdb://127.0.0.1:2113", "DATABASE_URL": "postgresql://x/y"})


def test_the_cli_refuses_both_urls_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ESDB_URL", "esdb://127.0.0.1:2113?tls=false")
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/none")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    assert main(["project"]) == 2
    assert "both set" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_store_kind_follows_the_urls() -> None:
    assert Settings.from_env({}).store_kind == "embedded"
    assert Settings.from_env({"DATABASE_URL": "postgresql://h/d"}).store_kind == "postgres"
    assert Settings.from_env({"ESDB_URL": "esdb://h:2113"}).store_kind == "eventstoredb"


async def test_database_url_opens_the_postgres_store(tmp_path: Path) -> None:
    settings = Settings(
        database_url=await session_database_url(), data_dir=tmp_path, jwt_secret="x" * 32
    )
    store = await open_store(settings)
    try:
        assert isinstance(store, PostgresEventStore)
        stream = unique_stream("boot")
        await store.append(stream, new_events(1), NO_STREAM)
        assert [e.version for e in await store.read_stream(stream)] == [1]
    finally:
        await store.close()
    assert not tmp_path.joinpath("events.sqlite3").exists()


async def test_schema_is_created_once_even_by_racing_starts() -> None:
    async with fresh_database() as url:
        opening = (PostgresEventStore.open(url, pool_size=2) for _ in range(4))
        stores = await asyncio.gather(*opening)
        for store in stores:
            await store.close()
        again = await PostgresEventStore.open(url)
        await again.close()
        conn = await asyncpg.connect(url)
        try:
            versions = await conn.fetch("SELECT version FROM es_schema_version ORDER BY version")
        finally:
            await conn.close()
        assert [row["version"] for row in versions] == list(range(1, len(MIGRATIONS) + 1))


async def test_a_database_left_at_an_older_version_is_migrated_forward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with fresh_database() as url:
        # What the first release left behind: schema version 1 and an event in its log.
        monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        old = await PostgresEventStore.open(url, pool_size=2)
        stream = unique_stream("old")
        try:
            async with old._pool.acquire() as conn:
                await conn.fetch(
                    "SELECT * FROM es_append($1, 0, $2, $3, $4, $5, $6, now())",
                    stream,
                    *([getattr(e, f) for e in new_events(1)] for f in _EVENT_FIELDS),
                )
        finally:
            await old.close()
        monkeypatch.undo()
        store = await PostgresEventStore.open(url, pool_size=2)
        try:
            assert [e.version for e in await store.read_stream(stream)] == [1]
            assert (await store.append(stream, new_events(1), 1)).version == 2
        finally:
            await store.close()
        conn = await asyncpg.connect(url)
        try:
            versions = await conn.fetch("SELECT version FROM es_schema_version ORDER BY version")
        finally:
            await conn.close()
        assert [row["version"] for row in versions] == list(range(1, len(schema.MIGRATIONS) + 1))


_EVENT_FIELDS = ("id", "type", "data", "metadata", "content_type")


async def test_groups_of_a_database_before_partitions_keep_their_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with fresh_database() as url:
        monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
        conn = await asyncpg.connect(url)
        try:
            await schema.migrate(conn)
            await conn.execute(
                "INSERT INTO es_persistent_groups (stream_key, group_name, settings, start_after,"
                " checkpoint) VALUES ('$all', 'old', $1::jsonb, NULL, 5),"
                " ('s-1', 'old', $1::jsonb, NULL, 3)",
                settings_to_json(SubscriptionSettings()).decode(),
            )
        finally:
            await conn.close()
        monkeypatch.undo()
        store = await PostgresEventStore.open(url, pool_size=2)
        try:
            assert (await store.groups.get_subscription_info("old")).checkpoint == 5
            on_stream = await store.groups.get_subscription_info("old", stream="s-1")
            assert on_stream.checkpoint == 3
            async with store._pool.acquire() as conn:
                counts = await conn.fetch(
                    "SELECT stream_key, count(*) FROM es_persistent_partitions"
                    " GROUP BY stream_key ORDER BY stream_key"
                )
            assert [tuple(row) for row in counts] == [("$all", PARTITIONS), ("s-1", 1)]
        finally:
            await store.close()
