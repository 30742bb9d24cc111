"""The EventStoreDB server (the repository's test server, a real gRPC process) killed and
restarted under reads: no empty or short read, /healthz truthful (never "ok" with head 0),
commands answer UNAVAILABLE while it is down, and the projections resume once it is back."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import httpx

from tests.e2e.gql import ORDER_EVENTS, GraphQLClient, Orders, accepted, error_codes, new_id
from tests.faults.conftest import (
    assert_right_or_unavailable,
    health,
    kill_hard,
    running_service,
    until,
)
from tests.support.processes import EsdbTestServerProcess

PROJECTIONS = "{ projections { name state lag lastError } }"
ORDER = "query O($id: ID!, $v: Int) { order(id: $id, minVersion: $v) { id version } }"


async def test_store_killed_and_restarted_under_reads(tmp_path: Path) -> None:
    esdb = EsdbTestServerProcess(data_dir=tmp_path / "esdb", log_path=tmp_path / "esdb.log")
    esdb.start()
    try:
        with running_service(tmp_path, env={"ESDB_URL": esdb.url}) as service:
            async with httpx.AsyncClient(
                base_url=service.url, timeout=20.0, trust_env=False
            ) as http:
                gql = GraphQLClient(http, service.token())
                orders = Orders(gql)
                ids = [new_id("esdb") for _ in range(20)]
                for order_id in ids:
                    accepted(await orders.place(order_id))
                    accepted(await orders.pay(order_id))
                stop = asyncio.Event()
                counts = {"right": 0, "unavailable": 0, "healthy": 0, "unhealthy": 0}

                async def read_continuously() -> None:
                    for order_id in itertools.cycle(ids):
                        if stop.is_set():
                            return
                        result = await gql.execute(ORDER_EVENTS, {"id": order_id})
                        if assert_right_or_unavailable(result, "orderEvents"):
                            versions = [e["version"] for e in result["data"]["orderEvents"]]
                            assert versions == [1, 2], f"a short read of {order_id}: {versions}"
                            counts["right"] += 1
                        else:
                            counts["unavailable"] += 1

                async def check_health() -> None:
                    while not stop.is_set():
                        status, details = await health(http, service.token())
                        if status == 200:
                            assert details["headPosition"] != "0", details
                            counts["healthy"] += 1
                        else:
                            counts["unhealthy"] += 1
                        await asyncio.sleep(0.05)

                readers = [asyncio.create_task(read_continuously()) for _ in range(3)]
                checker = asyncio.create_task(check_health())
                await asyncio.sleep(0.5)
                assert esdb.pid is not None
                kill_hard(esdb.pid)
                await asyncio.sleep(0.3)
                refused = await orders.gql.execute(
                    "mutation P($input: PlaceOrderInput!) { placeOrder(input: $input) "
                    "{ __typename } }",
                    {"input": {"customerId": "c-1", "items": [_item()]}},
                )
                assert error_codes(refused) == ["UNAVAILABLE"], refused
                assert refused["errors"][0]["extensions"]["part"] == "eventStore"

                async def projection_reports_it() -> bool:
                    (status,) = (await gql.data(PROJECTIONS))["projections"]
                    # down: its lag cannot be counted, so it says "unknown", not a stale number
                    return bool(status["state"] == "error" and status["lag"] == -1)

                await until(projection_reports_it, within=10, what="the projection reports it")
                await asyncio.sleep(1.0)
                esdb.stop(timeout=1)
                esdb = EsdbTestServerProcess(
                    data_dir=tmp_path / "esdb", log_path=tmp_path / "esdb-2.log", port=esdb.port
                )
                esdb.start()
                # projections resume: a new command reaches the views
                late = new_id("late")

                async def command_lands() -> bool:
                    result = await orders.gql.execute(
                        "mutation P($input: PlaceOrderInput!) { placeOrder(input: $input) "
                        "{ __typename } }",
                        {"input": {"orderId": late, "customerId": "c-1", "items": [_item()]}},
                    )
                    return not error_codes(result)

                back = await until(command_lands, within=20, what="commands work again")
                view = await gql.data(ORDER, {"id": late, "v": 1})
                assert view["order"] == {"id": late, "version": 1}

                async def projection_recovered() -> bool:
                    (status,) = (await gql.data(PROJECTIONS))["projections"]
                    return bool(status["state"] == "running" and status["lastError"] is None)

                await until(projection_recovered, within=10, what="the projection is clean")
                await asyncio.sleep(0.5)
                stop.set()
                await asyncio.gather(*readers, checker)
                assert counts["unavailable"] > 0, counts  # the outage was seen, as UNAVAILABLE
                assert counts["unhealthy"] > 0, counts
                assert counts["right"] > 0, counts
                print(f"commands back {back:.2f} s after the server answered; {counts}")
        assert "Traceback" not in service.log()
    finally:
        esdb.stop()


def _item() -> dict[str, object]:
    return {"productId": "p-1", "name": "Widget", "price": "10.00", "qty": 1}
