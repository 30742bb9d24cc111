"""The embedded redis-server killed under a running service: it heals itself (no service
restart), clients see the right answer or UNAVAILABLE meanwhile, live subscribers get a signal
rather than silence, shutdown stays quick; and the server never outlives its owner."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import httpx

from projections.embedded_redis import PID_FILE_NAME, SOCKET_NAME, launch_redis_server
from tests.e2e.gql import GraphQLClient, Orders, accepted, new_id
from tests.e2e.ws import graphql_ws
from tests.faults.conftest import (
    Service,
    alive,
    assert_right_or_unavailable,
    health,
    kill_hard,
    running_service,
    until,
)

ORDER = "query O($id: ID!, $v: Int) { order(id: $id, minVersion: $v) { id version status } }"
ORDERS_UPDATED = "subscription { ordersUpdated { id version } }"
ORDER_UPDATED = "subscription U($id: ID!) { orderUpdated(id: $id) { id version } }"


def redis_pid(data_dir: Path) -> int:
    server, _owner = (data_dir / PID_FILE_NAME).read_text().split()
    return int(server)


async def test_killed_embedded_redis_heals_without_a_service_restart(
    service: Service, http: httpx.AsyncClient, gql: GraphQLClient, orders: Orders
) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id))
    assert (await gql.data(ORDER, {"id": order_id, "v": 1}))["order"]["version"] == 1
    first_redis = redis_pid(service.data_dir)
    service_pid = service.process.pid
    async with graphql_ws(service.ws_url, service.token()) as ws:
        every = await ws.subscribe(ORDERS_UPDATED)
        one = await ws.subscribe(ORDER_UPDATED, {"id": order_id})
        assert (await one.event("orderUpdated"))["version"] == 1
        await asyncio.sleep(0.2)  # both subscriptions are listening

        kill_hard(first_redis)
        killed_at = time.monotonic()

        # No silence: ordersUpdated ends with UNAVAILABLE (changes may be missed), and the
        # orderUpdated subscriber is told as well, or gets the current view again.
        message = await every.message(within=10)
        assert message.kind in ("next", "error"), message
        errors = message.payload["errors"] if message.kind == "next" else message.payload
        assert {e["extensions"]["code"] for e in errors} == {"UNAVAILABLE"}, message

        # Meanwhile every query is right or UNAVAILABLE, until it is right again.
        async def order_is_served() -> bool:
            result = await gql.execute(ORDER, {"id": order_id})
            if assert_right_or_unavailable(result, "order during the Redis outage"):
                assert result["data"]["order"] == {
                    "id": order_id,
                    "version": 1,
                    "status": "PENDING",
                }
                return True
            return False

        healed = await until(order_is_served, within=15, what="the views are served again")

    assert service.process.pid == service_pid  # the same process: nothing restarted it
    second_redis = redis_pid(service.data_dir)
    assert second_redis != first_redis
    assert alive(second_redis)
    status, details = await health(http, service.token())
    assert status == 200, details
    # and it still works end to end: a new command reaches the views
    accepted(await orders.pay(order_id))
    paid = await gql.data(ORDER, {"id": order_id, "v": 2})
    assert paid["order"]["status"] == "PAID"
    log = service.log()
    assert "Traceback" not in log
    print(f"healed in {healed:.2f} s after the kill ({time.monotonic() - killed_at:.2f} s)")


def test_redis_dies_with_a_killed_service(tmp_path: Path) -> None:
    with running_service(tmp_path) as live:
        server = redis_pid(live.data_dir)
        live.kill()
        deadline = time.monotonic() + 5
        while alive(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(server), "the redis-server outlived the service it belonged to"


def test_an_orphan_of_a_dead_owner_is_killed_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # A redis-server left by a service that died without it (no parent-death signal, as on a
    # platform without one): it answers on the socket, and the pid file names a dead owner.
    orphan = launch_redis_server(data, data / SOCKET_NAME)
    try:
        (data / PID_FILE_NAME).write_text(f"{orphan.pid} {_exited_pid()}\n")
        time.sleep(0.3)  # it listens
        with running_service(tmp_path) as live:
            assert orphan.poll() is not None, "the orphan was joined instead of replaced"
            server, owner = (live.data_dir / PID_FILE_NAME).read_text().split()
            assert int(owner) == live.process.pid
            assert alive(int(server))
    finally:
        if orphan.poll() is None:
            orphan.kill()
        orphan.wait()


def _exited_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
