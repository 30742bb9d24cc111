"""kill -9 of the service under concurrent commands, then a restart on the same DATA_DIR: every
acknowledged command is in the log, and the views equal a fold of the log."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx

from tests.e2e.gql import GraphQLClient, Orders, new_id
from tests.faults.conftest import running_service

STATUS_AFTER = {"OrderPlaced": "PENDING", "PaymentTaken": "PAID", "OrderShipped": "SHIPPED"}
ORDER = "query O($id: ID!) { order(id: $id) { id version status } }"
STATS = "{ dashboardStats { totalOrders } }"


async def write_until_killed(orders: Orders, acknowledged: dict[str, int]) -> None:
    """Place and pay orders until the server goes; record each acknowledged version."""
    with contextlib.suppress(httpx.TransportError):
        while True:
            order_id = new_id("kill")
            placed = await orders.place(order_id)
            if placed.get("__typename") != "CommandAccepted":
                continue
            acknowledged[order_id] = 1
            paid = await orders.pay(order_id)
            if paid.get("__typename") == "CommandAccepted":
                acknowledged[order_id] = 2


async def test_kill_under_commands_loses_no_acknowledged_command(tmp_path: Path) -> None:
    acknowledged: dict[str, int] = {}
    with running_service(tmp_path) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=10.0, trust_env=False) as http:
            orders = Orders(GraphQLClient(http, service.token()))
            writers = [
                asyncio.create_task(write_until_killed(orders, acknowledged)) for _ in range(8)
            ]
            await asyncio.sleep(1.5)
            service.kill()
            async with asyncio.timeout(15):
                await asyncio.gather(*writers)
    assert len(acknowledged) > 10, "too few commands before the kill to prove anything"
    with running_service(tmp_path) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=20.0, trust_env=False) as http:
            gql = GraphQLClient(http, service.token())
            orders = Orders(gql)
            log: dict[str, list[str]] = {}
            after = None
            while True:
                page = await orders.events_page(first=50, after=after)
                for edge in page["edges"]:
                    event = edge["node"]
                    stream = event["streamId"].removeprefix("order-")
                    log.setdefault(stream, []).append(event["type"])
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
            for order_id, version in acknowledged.items():
                assert order_id in log, f"acknowledged {order_id} is not in the log"
                assert len(log[order_id]) >= version, (order_id, log[order_id])
            for order_id, types in log.items():  # the views equal the fold of the log
                view = (await gql.data(ORDER, {"id": order_id}))["order"]
                assert view == {
                    "id": order_id,
                    "version": len(types),
                    "status": STATUS_AFTER[types[-1]],
                }
            stats = await gql.data(STATS)
            assert stats["dashboardStats"]["totalOrders"] == len(log)
