"""EventStoreDB stopped (SIGSTOP) for 12 s under a serving process and its projector, as issue 19
stopped it: the projector outlives the stall (no "Subscription has already been stopped", no
traceback), health shows the stall while it lasts, and the views catch up after it."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from tests.e2e.gql import GraphQLClient, Orders, accepted, error_codes, new_id
from tests.faults.conftest import health, running_service, until
from tests.support.processes import EsdbTestServerProcess

STALL = 12.0
"""Seconds the server is stopped (the fault itself, not a wait for a condition)."""
ORDER = "query O($id: ID!) { order(id: $id) { id version } }"
PROJECTIONS = "query { projections { name state lastError } }"


async def _seen(gql: GraphQLClient, order_id: str) -> bool:
    result = await gql.execute(ORDER, {"id": order_id})
    return not error_codes(result) and result["data"]["order"] is not None


async def test_a_12_s_eventstoredb_stall_leaves_the_projector_running(tmp_path: Path) -> None:
    esdb = EsdbTestServerProcess(data_dir=tmp_path / "esdb", log_path=tmp_path / "esdb.log")
    esdb.start()
    try:
        with running_service(tmp_path, env={"ESDB_URL": esdb.url}) as service:
            assert esdb.pid is not None
            async with httpx.AsyncClient(
                base_url=service.url, timeout=30.0, trust_env=False
            ) as http:
                gql = GraphQLClient(http, service.token())
                before = new_id("before")
                accepted(await Orders(gql).place(before))
                await until(lambda: _seen(gql, before), within=15, what="the order is projected")
                os.kill(esdb.pid, signal.SIGSTOP)
                try:
                    await asyncio.sleep(STALL / 2)
                    status, details = await health(http, service.token())
                    assert status == 503, details
                    await asyncio.sleep(STALL / 2)
                finally:
                    os.kill(esdb.pid, signal.SIGCONT)
                after = new_id("after")

                async def placed() -> bool:
                    codes = error_codes(await Orders(gql).place(after))
                    # a retry of a placement that committed late finds it placed
                    return codes in ([], ["ALREADY_EXISTS"])

                await until(placed, within=30, what="commands are served again", every=0.25)
                await until(lambda: _seen(gql, after), within=30, what="the projector goes on")
                projections = (await gql.execute(PROJECTIONS))["data"]["projections"]
                assert all(p["state"] == "running" for p in projections), projections
        log = service.log()
        assert "Traceback" not in log, log
        assert "already been stopped" not in log, log
    finally:
        if esdb.pid is not None:
            os.kill(esdb.pid, signal.SIGCONT)
        esdb.stop()
