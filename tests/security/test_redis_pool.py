"""Exhausting Redis connections must not break other callers: requests wait for a connection of
the bounded pool (or answer the retryable UNAVAILABLE), never INTERNAL_SERVER_ERROR; and live
subscriptions share the process's one pub/sub, so thousands of them take no connections."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.e2e.gql import GraphQLClient, Orders, accepted, error_codes, new_id
from tests.e2e.ws import graphql_ws
from tests.faults.conftest import running_service

# Under the query cost limit (about 10,500 per aliased page), so the flood reaches Redis:
# many requests of a few aliases each put as many reads in flight as a few huge ones would.
ALIASES = 4
FLOOD = 45
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


async def test_a_flood_of_view_reads_does_not_fail_other_callers(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
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

            async def small(order_id: str) -> list[str | None]:
                return error_codes(await victim.execute(ORDER, {"id": order_id}))

            flood = asyncio.gather(*(staff.execute(HEAVY) for _ in range(FLOOD)))
            others = asyncio.gather(*(small(order_id) for order_id in ids[:40]))
            heavy, small_codes = await asyncio.gather(flood, others)
            for result in heavy:
                assert set(error_codes(result)) <= {"UNAVAILABLE"}, result["errors"][:2]
            for codes in small_codes:
                assert set(codes) <= {"UNAVAILABLE"}, codes
            assert small_codes.count([]) > 0, "every other caller was refused"

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
