"""REDIS_URL=redis+sentinel://: a real server on a real Sentinel set-up (one master, one replica,
three sentinels) follows a failover. The master is killed with SIGKILL while commands and reads
go through the API; afterwards reads equal the fold of what the commands did, and a live
subscriber, told that it missed changes, subscribes again and gets the changes made after
the failover. Reads may answer UNAVAILABLE for a moment,
never anything else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.gql import GraphQLClient, Orders, accepted, error_codes, new_id
from tests.e2e.test_read_model import ORDERS, ORDERS_UPDATED, all_orders, eventually
from tests.e2e.ws import Subscription, graphql_ws
from tests.integration.redis_topologies.servers import RedisSentinel, running_redis_sentinel
from tests.support.live_server import running_server


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[RedisSentinel]:
    with running_redis_sentinel(tmp_path / "sentinel") as topology:
        yield topology


async def _write(orders: Orders, customer: str, done: dict[str, str], stop: asyncio.Event) -> None:
    """Place orders for `customer` and pay every other one until `stop`; `done` records each
    order's status as the log has it."""
    n = 0
    while not stop.is_set():
        order_id = new_id("fo")
        accepted(await orders.place(order_id, customer_id=customer))
        done[order_id] = "PENDING"
        if n % 2:
            accepted(await orders.pay(order_id))
            done[order_id] = "PAID"
        n += 1
        await asyncio.sleep(0.01)


async def _read(gql: GraphQLClient, customer: str, stop: asyncio.Event) -> dict[str, int]:
    """Read the customer's orders until `stop`; count answers by outcome. A read that fails
    other than UNAVAILABLE fails the test."""
    outcomes = {"ok": 0, "UNAVAILABLE": 0}
    while not stop.is_set():
        result = await gql.execute(ORDERS, {"customerId": customer, "first": 50})
        if result.get("errors"):
            codes = error_codes(result)
            assert codes == ["UNAVAILABLE"], f"a read failed otherwise: {result['errors']}"
            outcomes["UNAVAILABLE"] += 1
        else:
            for edge in result["data"]["orders"]["edges"]:
                assert edge["node"]["status"] in ("PENDING", "PAID")
            outcomes["ok"] += 1
        await asyncio.sleep(0.02)
    return outcomes


async def _until_told(sub: Subscription, within: float) -> None:
    """Skip the changes `sub` got until it says it missed some (an error), as the contract
    tells a subscriber when the live feed lost Redis."""
    deadline = time.monotonic() + within
    while True:
        message = await sub.message(max(0.1, deadline - time.monotonic()))
        if message.kind == "error" or (message.kind == "next" and message.payload.get("errors")):
            return


async def _until_seen(sub: Subscription, order_id: str, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        message = await sub.message(max(0.1, deadline - time.monotonic()))
        payload = message.payload if message.kind == "next" else {}
        if (
            not payload.get("errors")
            and payload.get("data", {}).get("ordersUpdated", {}).get("id") == order_id
        ):
            return


async def test_the_service_follows_a_failover(tmp_path: Path, sentinel: RedisSentinel) -> None:
    with running_server(tmp_path, {"REDIS_URL": sentinel.url}) as server:
        token = server.token(sub="staff-1", role="staff")
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0, trust_env=False) as http:
            gql = GraphQLClient(http, token)
            orders = Orders(gql)
            customer = new_id("c")
            done: dict[str, str] = {}
            async with graphql_ws(server.ws_url, token) as ws:
                sub = await ws.subscribe(ORDERS_UPDATED, {"customerId": customer})
                await asyncio.sleep(0.2)
                stop = asyncio.Event()
                writer = asyncio.create_task(_write(orders, customer, done, stop))
                reader = asyncio.create_task(_read(gql, customer, stop))
                await asyncio.sleep(1.0)
                old = sentinel.master.port
                sentinel.master.kill()
                await eventually(
                    lambda: asyncio.to_thread(lambda: sentinel.master_port() != old), within=30
                )
                await asyncio.sleep(2.0)  # load goes on against the new master
                stop.set()
                await writer
                outcomes = await reader
                assert outcomes["ok"] > 0

                # Told of the gap, a subscriber re-reads and subscribes again.
                await _until_told(sub, within=10)
                again = await ws.subscribe(ORDERS_UPDATED, {"customerId": customer})
                await asyncio.sleep(0.2)
                late = new_id("late")
                accepted(await orders.place(late, customer_id=customer))
                done[late] = "PENDING"
                await _until_seen(again, late, within=30)

            async def fold_reached() -> bool:
                views = await all_orders(gql, customerId=customer)
                return {view["id"]: view["status"] for view in views} == done

            await eventually(fold_reached, within=30)
            assert sentinel.master_port() == sentinel.replica.port
