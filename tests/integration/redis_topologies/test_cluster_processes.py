"""A deployment on a Redis Cluster: two API processes (`orders serve --no-projectors`) and two
projector processes (`orders project`) on one PostgreSQL database, REDIS_URL=redis+cluster://
naming three masters. Commands go through both APIs while a websocket subscriber listens on each:
every change reaches both subscribers, and the views equal the fold of the log."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore.postgres import PostgresEventStore
from eventstore.postgres.persistent_tables import PARTITIONS
from projections.queries import OrderQueries
from projections.redis_url import client_for_url
from tests.e2e.gql import make_token
from tests.e2e.test_read_model import ORDERS_UPDATED
from tests.e2e.ws import Subscription, graphql_ws
from tests.integration.postgres.test_processes import drive, partitions, start_projector, wait_for
from tests.integration.projections.store_helpers import actual_views, eventually, expected_views
from tests.integration.redis_topologies.servers import RedisCluster, running_redis_cluster
from tests.support.postgres_db import create_database, drop_database
from tests.support.processes import ServerProcess, stop_gently

ORDERS = 30


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    with running_redis_cluster(tmp_path / "cluster") as started:
        yield started


async def _changes(sub: Subscription, until: set[tuple[str, int]], within: float) -> None:
    """Take `ordersUpdated` pushes until every (order, version) of `until` came; any error (a
    missed change) fails."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    seen: set[tuple[str, int]] = set()
    while not until <= seen:
        payload = await sub.result(max(0.1, deadline - loop.time()))
        assert not payload.get("errors"), payload["errors"]
        order = payload["data"]["ordersUpdated"]
        seen.add((order["id"], order["version"]))


async def _scenario(database: str, redis_url: str, urls: list[str], secret: str) -> None:
    token = make_token(secret, sub="staff", role="staff")
    async with (
        graphql_ws(urls[0].replace("http", "ws") + "/graphql", token) as first,
        graphql_ws(urls[1].replace("http", "ws") + "/graphql", token) as second,
    ):
        subs = [await first.subscribe(ORDERS_UPDATED), await second.subscribe(ORDERS_UPDATED)]
        await asyncio.sleep(0.3)  # both subscriptions are registered before the writes
        order_ids = await drive(urls, secret, ORDERS, "cl")

        store = await PostgresEventStore.open(database, pool_size=2)
        redis = client_for_url(redis_url, {})
        try:
            expected, _ = await expected_views(store)
            every_change = {
                (order_id, version)
                for order_id, view in expected.items()
                for version in range(1, view.version + 1)
            }
            assert {order_id for order_id, _ in every_change} == set(order_ids)
            await asyncio.gather(*(_changes(sub, every_change, within=30) for sub in subs))

            queries = OrderQueries(redis)

            async def equal() -> bool:
                return await actual_views(queries, order_ids) == await expected_views(store)

            await eventually(equal, within=30)
        finally:
            await redis.aclose()
            await store.close()


def test_two_apis_and_two_projectors_on_a_redis_cluster(
    tmp_path: Path, cluster: RedisCluster
) -> None:
    secret = secrets.token_urlsafe(32)
    database = asyncio.run(create_database("orders_cluster"))
    try:
        shared = {"DATABASE_URL": database, "REDIS_URL": cluster.url}
        env = {k: v for k, v in os.environ.items() if k not in ("ESDB_URL", "REDIS_URL")}
        env.update(shared, DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
        logs = [tmp_path / f"project{n}.log" for n in range(2)]
        projectors = [start_projector(env, log) for log in logs]
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

            def split() -> bool:
                parts = [partitions(log) for log in logs]
                return all(parts) and len(parts[0] | parts[1]) == PARTITIONS

            asyncio.run(wait_for(split, "the projectors never split the group"))
            for api in apis:
                api.start()
            asyncio.run(_scenario(database, cluster.url, [api.url for api in apis], secret))
            for projector, log in zip(projectors, logs, strict=True):
                assert projector.poll() is None, log.read_text()
        finally:
            for api in apis:
                api.stop()
            for projector in projectors:
                stop_gently(projector)
    finally:
        asyncio.run(drop_database(database))
