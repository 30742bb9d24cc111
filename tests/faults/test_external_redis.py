"""An external Redis (REDIS_URL) restarted empty under continuous queries, and a service started
while its Redis is down: no wrong answer at any moment (a right one or UNAVAILABLE), live
subscribers told of what they missed, /healthz truthful, and recovery without a restart."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis as sync_redis

from projections.embedded_redis import launch_redis_server
from tests.e2e.gql import JSON, GraphQLClient, Orders, accepted, error_codes, new_id
from tests.e2e.ws import graphql_ws
from tests.faults.conftest import (
    assert_right_or_unavailable,
    health,
    kill_hard,
    running_service,
    until,
)

STATS = "{ dashboardStats { totalOrders } }"
EXPECTED_TOTALS = {"before": {200}, "down": set(), "refilling": {220}, "after": {220}}
"""The right answers by phase: 200 orders placed, then 20 more while Redis is down."""
ORDER = "query O($id: ID!) { order(id: $id) { id version } }"
ORDERS_UPDATED = "subscription { ordersUpdated { id version } }"


class ExternalRedis:
    """A redis-server of the test's own on a socket, that can be killed and started again empty."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        self.process = launch_redis_server(self.directory, self.socket)
        deadline = time.monotonic() + 10
        while True:
            client = sync_redis.Redis(unix_socket_path=str(self.socket))
            try:
                if client.ping():
                    return
            except sync_redis.ConnectionError:
                assert time.monotonic() < deadline, "the test's redis-server did not start"
                time.sleep(0.02)
            finally:
                client.close()

    def kill(self) -> None:
        assert self.process is not None
        kill_hard(self.process.pid)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextmanager
def external_redis(directory: Path) -> Iterator[ExternalRedis]:
    directory.mkdir(parents=True, exist_ok=True)
    server = ExternalRedis(directory)
    try:
        yield server
    finally:
        server.stop()


async def place_many(orders: Orders, count: int, prefix: str) -> list[str]:
    ids = [new_id(prefix) for _ in range(count)]
    for start in range(0, count, 20):
        results = await asyncio.gather(*(orders.place(i) for i in ids[start : start + 20]))
        for result in results:
            accepted(result)
    return ids


async def test_redis_restarted_empty_under_continuous_queries(tmp_path: Path) -> None:
    with (
        external_redis(tmp_path / "redis") as redis_server,
    ):
        redis_server.start()
        with running_service(tmp_path, env={"REDIS_URL": redis_server.url}) as service:
            async with httpx.AsyncClient(
                base_url=service.url, timeout=15.0, trust_env=False
            ) as http:
                gql = GraphQLClient(http, service.token())
                orders = Orders(gql)
                seeded = await place_many(orders, 200, "seed")
                await until(lambda: _total_is(gql, 200), within=20, what="the views hold the seed")
                phase = "before"
                seen: dict[str, int] = {}
                unhealthy = 0
                stop = asyncio.Event()

                async def query_continuously() -> None:
                    nonlocal unhealthy
                    ids = itertools.cycle(seeded)
                    while not stop.is_set():
                        at = phase
                        stats, one = await asyncio.gather(
                            gql.execute(STATS), gql.execute(ORDER, {"id": next(ids)})
                        )
                        if assert_right_or_unavailable(stats, f"stats {at}"):
                            total = stats["data"]["dashboardStats"]["totalOrders"]
                            expected = EXPECTED_TOTALS[at]
                            if at == phase:  # the phase did not change under the request
                                assert total in expected, f"{at}: totalOrders {total}"
                        if assert_right_or_unavailable(one, f"order {at}"):
                            assert one["data"]["order"] is not None, f"{at}: an order went missing"
                            assert one["data"]["order"]["version"] == 1
                        seen[at] = seen.get(at, 0) + 1
                        status, _ = await health(http, service.token())
                        unhealthy += status == 503

                async with graphql_ws(service.ws_url, service.token()) as ws:
                    live = await ws.subscribe(ORDERS_UPDATED)
                    await asyncio.sleep(0.2)
                    poller = asyncio.create_task(query_continuously())
                    await asyncio.sleep(0.3)
                    redis_server.kill()
                    phase = "down"
                    await place_many(orders, 20, "during")  # the store is fine: commands work
                    signal = await live.message(within=10)
                    await asyncio.sleep(1.0)  # clients keep asking while Redis is away
                    redis_server.start()  # empty: no persistence
                    phase = "refilling"  # complete views (220) or UNAVAILABLE, nothing between
                    healed = await until(
                        lambda: _total_is(gql, 220), within=30, what="views refilled"
                    )
                    phase = "after"
                    await asyncio.sleep(0.5)
                    stop.set()
                    await poller
                assert {"before", "down", "after"} <= set(seen), seen
                assert unhealthy > 0, "/healthz never said 503 while Redis was gone"
                # the subscriber was told it missed changes, not left to miss them silently
                errors = signal.payload if signal.kind == "error" else signal.payload["errors"]
                assert {e["extensions"]["code"] for e in errors} == {"UNAVAILABLE"}, signal
                status, details = await health(http, service.token())
                assert status == 200, details
                print(f"served again {healed:.2f} s after the restart, phases {seen}")


async def _total_is(gql: GraphQLClient, total: int) -> bool:
    result: JSON = await gql.execute(STATS)
    if error_codes(result):
        return False
    return bool(result["data"]["dashboardStats"]["totalOrders"] == total)


async def test_start_with_redis_down_serves_and_heals(tmp_path: Path) -> None:
    with external_redis(tmp_path / "redis") as redis_server:
        env = {"REDIS_URL": redis_server.url}
        with running_service(tmp_path, env=env, wait_healthy=False) as service:
            async with httpx.AsyncClient(
                base_url=service.url, timeout=15.0, trust_env=False
            ) as http:

                async def answers() -> bool:
                    try:
                        await http.get("/healthz")
                    except httpx.TransportError:
                        return False
                    return True

                await until(answers, within=30, what="the port binds with Redis down")
                status, details = await health(http, service.token())
                assert status == 503
                assert details["redis"] == "unavailable"
                gql = GraphQLClient(http, service.token())
                result = await gql.execute(STATS)
                assert error_codes(result) == ["UNAVAILABLE"], result
                assert result["errors"][0]["extensions"]["part"] == "redis"
                order_id = new_id()
                accepted(await Orders(gql).place(order_id))  # writes need no Redis
                await asyncio.sleep(1.5)  # a few retries' worth of the log
                redis_server.start()
                came = await until(
                    lambda: _total_is(gql, 1), within=20, what="views after Redis came"
                )
                print(f"views served {came:.2f} s after Redis started")
                status, _ = await health(http, service.token())
                assert status == 200
        log = service.log()
        assert "Traceback" not in log
        # said once, not once per retry
        redis_lines = [line for line in log.splitlines() if "level=WARNING" in line]
        assert len(redis_lines) <= 6, "\n".join(redis_lines)
