"""Exhausting Redis connections must not break other callers: requests wait for a connection of
the bounded pool (or answer the retryable UNAVAILABLE), never INTERNAL_SERVER_ERROR; and live
subscriptions share the process's one pub/sub, so thousands of them take no connections. A full
pool is load, not an outage: it is never logged as one, and never sends the projector or the
views into recovery (they have a pool of their own)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest
from graphql import GraphQLError
from redis.asyncio import Redis

from api.http.outages import OutageLog, unavailable_of
from projections.redis_pool import BusyAwarePool, RedisBusy, pool_user
from projections.service import redis_client
from tests.e2e.gql import GraphQLClient, Orders, accepted, error_codes, new_id
from tests.e2e.ws import graphql_ws
from tests.faults.conftest import running_service
from tests.support.redis_server import running_redis_server

ALIASES = 4  # each alias reads a page of 100 views; more would pass the query-cost limit
FLOOD = 45  # concurrent heavy queries: together far more page reads than the pool has connections
HEAVY = (
    "{ "
    + " ".join(
        f"a{n}: orders(first: 100) {{ edges {{ node {{ id total items {{ productId }} }} }} }}"
        for n in range(ALIASES)
    )
    + " }"
)
ORDER = "query O($id: ID!) { order(id: $id) { id version } }"
ORDER_UPDATED = "subscription U($id: ID!) { orderUpdated(id: $id) { id version } }"


# The cost limit refuses HEAVY before it reads anything (tests/security/test_cost_limit.py); here
# it is raised so the reads really run and the pool itself is what is tested.
POOL_ONLY = {"MAX_QUERY_COST": "10000000"}


async def test_a_flood_of_view_reads_does_not_fail_other_callers(tmp_path: Path) -> None:
    with running_service(tmp_path, env=POOL_ONLY) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=60.0, trust_env=False) as http:
            staff = GraphQLClient(http, service.token())
            ids = [new_id("pool") for _ in range(60)]
            for start in range(0, len(ids), 20):
                placed = await asyncio.gather(
                    *(Orders(staff).place(i) for i in ids[start : start + 20])
                )
                for result in placed:
                    accepted(result)
            await staff.data(ORDER, {"id": ids[-1]})
            await asyncio.sleep(0.5)  # the views hold them all

            victim = GraphQLClient(http, service.token(sub="c-1", role="customer"))
            in_flight = asyncio.Semaphore(4)  # a client within its budget of requests in flight

            async def small(order_id: str) -> list[str | None]:
                async with in_flight:
                    return error_codes(await victim.execute(ORDER, {"id": order_id}))

            log_before_flood = len(service.log())

            flood = asyncio.gather(*(staff.execute(HEAVY) for _ in range(FLOOD)))
            others = asyncio.gather(*(small(order_id) for order_id in ids[:40]))
            heavy, small_codes = await asyncio.gather(flood, others)
            for result in heavy:
                assert set(error_codes(result)) <= {"UNAVAILABLE"}, result["errors"][:2]
            for codes in small_codes:
                assert set(codes) <= {"UNAVAILABLE"}, codes
            assert small_codes.count([]) > 0, "every other caller was refused"
            flood_log = service.log()[log_before_flood:]
            for sign_of_an_outage in ("event=outage", "projector_error", "views_recovering"):
                assert sign_of_an_outage not in flood_log, flood_log[-2000:]

            # thousands of live subscribers, and none of them holds a Redis connection
            async def subscribers(order_ids: list[str]) -> int:
                async with graphql_ws(service.ws_url, service.token()) as ws:
                    subs = [await ws.subscribe(ORDER_UPDATED, {"id": i}) for i in order_ids]
                    first = [await sub.event("orderUpdated", within=30) for sub in subs]
                    assert [view["id"] for view in first] == order_ids
                    await staff.data(ORDER, {"id": order_ids[0]})  # queries still work
                    return len(first)

            served = await asyncio.gather(*(subscribers(ids[:50]) for _ in range(24)))
            assert sum(served) == 24 * 50
        assert "INTERNAL_SERVER_ERROR" not in service.log()


async def test_a_pool_that_stays_full_is_busy_not_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_redis_server(tmp_path) as socket_path:
        client: Redis = redis_client(unix_socket=socket_path, max_connections=1)
        client.connection_pool.timeout = 0.2  # type: ignore[attr-defined]
        try:
            held = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
            with pytest.raises(RedisBusy) as busy:
                await client.get("k")
            await client.connection_pool.release(held)
            assert await client.get("k") is None  # served again once a connection is free
        finally:
            await client.aclose()
    error = GraphQLError("x", original_error=busy.value)
    unavailable = unavailable_of(error)
    assert unavailable is not None
    assert unavailable.extensions == {"code": "UNAVAILABLE", "part": "redis", "retryAfter": 1}
    assert "busy" in unavailable.message
    outages = OutageLog()
    with caplog.at_level(logging.INFO, logger="api.http.outages"):
        for _ in range(5):
            outages.failed("redis", busy.value)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1, lines
    assert lines[0].startswith("event=redis_busy"), lines


async def test_one_reader_holds_only_its_share_of_the_pool(tmp_path: Path) -> None:
    with running_redis_server(tmp_path) as socket_path:
        client: Redis = redis_client(unix_socket=socket_path, max_connections=4, per_user=2)
        pool = client.connection_pool
        assert isinstance(pool, BusyAwarePool)
        pool.timeout = 0.3
        try:

            async def hold(user: str) -> None:
                """A read that keeps its connection for a second."""
                pool_user.set(user)
                connection = await pool.get_connection()
                await asyncio.sleep(1.0)
                await pool.release(connection)

            flood = [asyncio.create_task(hold("customer:flooder")) for _ in range(6)]
            await asyncio.sleep(0.1)
            pool_user.set("customer:other")
            started = time.monotonic()
            assert await client.get("k") is None  # served at once: the pool has room
            assert time.monotonic() - started < 0.3
            outcomes = await asyncio.gather(*flood, return_exceptions=True)
            busy = [o for o in outcomes if isinstance(o, RedisBusy)]
            assert len(busy) == 4, outcomes  # two ran; the rest waited their turn, in vain
            assert pool.share is not None
            assert pool.share.users == 0  # nothing held, nothing kept
        finally:
            await client.aclose()
