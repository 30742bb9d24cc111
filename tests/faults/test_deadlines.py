"""Stalled dependencies: a part that keeps its connections open but stops answering (an
EventStoreDB stopped with SIGSTOP, a PostgreSQL table locked, a Redis stopped) is answered
UNAVAILABLE naming the part within its deadline (STORE_TIMEOUT, REDIS_TIMEOUT) plus a margin,
never held for the whole stall; /healthz names the part; and everything serves again once the
stall ends, without a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.e2e.gql import (
    EVENTS,
    JSON,
    MUTATIONS,
    ORDER_EVENTS,
    PLACE,
    GraphQLClient,
    Orders,
    accepted,
    error_codes,
    item,
    new_id,
)
from tests.faults.conftest import Service, health, running_service, until
from tests.support.postgres_db import create_database, drop_database
from tests.support.processes import EsdbTestServerProcess
from tests.support.redis_server import running_redis_server

STORE_TIMEOUT = 2.0
REDIS_TIMEOUT = 1.0
MARGIN = 2.5
"""Time past the deadline an answer may take on a loaded 2-core machine (the GraphQL work, the
other calls of the request)."""
ORDER = "query O($id: ID!) { order(id: $id) { id version } }"

Call = tuple[str, str, dict[str, Any]]


def _store_calls(order_id: str) -> list[Call]:
    """The request-path calls of the event store: a new order, a command on a known one, its
    events, and the global log."""
    pay = {"orderId": order_id, "amount": "10.00", "method": "card", "transactionId": "t-1"}
    return [
        ("placeOrder", PLACE, {"input": {"customerId": "c-1", "items": [item()]}}),
        ("takePayment", MUTATIONS["takePayment"], {"input": pay}),
        ("orderEvents", ORDER_EVENTS, {"id": order_id}),
        ("events", EVENTS, {"first": 5}),
    ]


async def _answers_in_time(
    gql: GraphQLClient, calls: list[Call], *, part: str, bound: float
) -> dict[str, float]:
    """Send every call at once (twice each); each must answer UNAVAILABLE naming `part` within
    `bound` seconds. Returns the slowest answer's seconds per call."""

    async def one(name: str, query: str, variables: dict[str, Any]) -> tuple[str, float, JSON]:
        start = time.monotonic()
        result = await gql.execute(query, variables)
        return name, time.monotonic() - start, result

    try:
        # The part stays stalled until these answered: an answer that waits for the stall to end
        # would wait for ever.
        async with asyncio.timeout(bound + 5):
            answers = await asyncio.gather(*(one(*call) for call in calls for _ in range(2)))
    except TimeoutError:
        raise AssertionError(f"no answer within {bound + 5} s while {part} is stalled") from None
    slowest: dict[str, float] = {}
    for name, took, result in answers:
        assert took < bound, f"{name} answered after {took:.1f} s (bound {bound} s): {result}"
        assert error_codes(result) == ["UNAVAILABLE"], f"{name}: {result}"
        assert result["errors"][0]["extensions"]["part"] == part, f"{name}: {result}"
        slowest[name] = max(slowest.get(name, 0.0), took)
    return slowest


async def _health_names(http: httpx.AsyncClient, service: Service, part: str) -> None:
    status, details = await health(http, service.token())
    assert status == 503, details
    assert details[part] == "unavailable", details


@asynccontextmanager
async def _client(service: Service) -> AsyncIterator[tuple[httpx.AsyncClient, GraphQLClient]]:
    async with httpx.AsyncClient(base_url=service.url, timeout=60.0, trust_env=False) as http:
        yield http, GraphQLClient(http, service.token())


async def _serves_again(orders: Orders, within: float) -> float:
    async def placed() -> bool:
        result = await orders.gql.execute(
            PLACE, {"input": {"customerId": "c-1", "items": [item()]}}
        )
        return not error_codes(result)

    return await until(placed, within=within, what="commands are served again")


async def _stalled_store(
    service: Service, stall: Callable[[], Awaitable[None]], resume: Callable[[], Awaitable[None]]
) -> dict[str, float]:
    """Place an order, stall the store, check every store call and /healthz, resume it."""
    async with _client(service) as (http, gql):
        orders = Orders(gql)
        order_id = new_id("stall")
        accepted(await orders.place(order_id))
        await stall()
        try:
            slowest = await _answers_in_time(
                gql, _store_calls(order_id), part="eventStore", bound=STORE_TIMEOUT + MARGIN
            )
            await _health_names(http, service, "store")
        finally:
            await resume()
        await _serves_again(orders, within=20)
        print(f"slowest answers under the stall: {slowest}")
        return slowest


async def test_a_stopped_eventstoredb_is_answered_within_the_store_deadline(
    tmp_path: Path,
) -> None:
    esdb = EsdbTestServerProcess(data_dir=tmp_path / "esdb", log_path=tmp_path / "esdb.log")
    esdb.start()
    try:
        env = {"ESDB_URL": esdb.url, "STORE_TIMEOUT": str(STORE_TIMEOUT)}
        with running_service(tmp_path, env=env) as service:
            assert esdb.pid is not None
            pid = esdb.pid

            async def stall() -> None:
                os.kill(pid, signal.SIGSTOP)

            async def resume() -> None:
                os.kill(pid, signal.SIGCONT)

            await _stalled_store(service, stall, resume)
        assert "Traceback" not in service.log()
    finally:
        if esdb.pid is not None:
            os.kill(esdb.pid, signal.SIGCONT)
        esdb.stop()


async def test_a_locked_postgresql_table_is_answered_within_the_store_deadline(
    tmp_path: Path,
) -> None:
    url = await create_database("orders_stall")
    try:
        env = {"DATABASE_URL": url, "STORE_TIMEOUT": str(STORE_TIMEOUT)}
        with running_service(tmp_path, env=env) as service:
            locker = await asyncpg.connect(url)
            transaction = locker.transaction()
            try:

                async def stall() -> None:
                    await transaction.start()
                    await locker.execute("LOCK TABLE es_events IN ACCESS EXCLUSIVE MODE")

                async def resume() -> None:
                    await transaction.rollback()

                await _stalled_store(service, stall, resume)
            finally:
                await locker.close()
        assert "Traceback" not in service.log()
    finally:
        await drop_database(url)


async def test_a_stalled_redis_is_answered_within_the_redis_deadline(tmp_path: Path) -> None:
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    with running_redis_server(redis_dir) as socket_path:
        env = {"REDIS_URL": f"unix://{socket_path}", "REDIS_TIMEOUT": str(REDIS_TIMEOUT)}
        with running_service(tmp_path, env=env) as service:
            pid = _redis_pid(socket_path)
            async with _client(service) as (http, gql):
                orders = Orders(gql)
                order_id = new_id("stall")
                accepted(await orders.place(order_id))
                await until(
                    lambda: _order_seen(gql, order_id), within=10, what="the order is projected"
                )
                os.kill(pid, signal.SIGSTOP)
                try:
                    slowest = await _answers_in_time(
                        gql,
                        [("order", ORDER, {"id": order_id}) for _ in range(5)],
                        part="redis",
                        bound=REDIS_TIMEOUT + MARGIN,
                    )
                    await _health_names(http, service, "redis")
                finally:
                    os.kill(pid, signal.SIGCONT)
                await until(
                    lambda: _order_seen(gql, order_id), within=10, what="views are read again"
                )
                print(f"slowest view read under the stall: {slowest}")
        assert "Traceback" not in service.log()


async def _order_seen(gql: GraphQLClient, order_id: str) -> bool:
    result = await gql.execute(ORDER, {"id": order_id})
    return not error_codes(result) and result["data"]["order"] is not None


def _redis_pid(socket_path: Path) -> int:
    """The pid of the redis-server listening on `socket_path`."""
    import redis as sync_redis

    client = sync_redis.Redis(unix_socket_path=str(socket_path))
    try:
        info: dict[str, Any] = client.info("server")
        return int(info["process_id"])
    finally:
        client.close()
