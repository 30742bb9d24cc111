"""The metrics of a real `orders serve`, scraped from /metrics and METRICS_PORT and read with
prometheus-client's parser: commands, requests, conflicts and retries, appends and group
commits, the projector, and websocket connections, subscriptions and pushes move by what was
done. /metrics is open on a loopback HOST and staff only elsewhere; operation names sent by
clients never become labels unchecked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.gql import PLACE, GraphQLClient, Orders, accepted, error_codes, item, new_id
from tests.e2e.ws import graphql_ws
from tests.integration.operations.metrics_scrape import Samples, labels_of, names, scrape, value
from tests.support.live_server import LiveServer, running_server
from tests.support.processes import free_port

PLACED = 3


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


def _commands(samples: Samples, kind: str, outcome: str) -> float:
    return value(samples, "orders_commands_total", type=kind, outcome=outcome)


async def _burst(orders: Orders, order_id: str, size: int) -> list[str]:
    """`size` addItem commands on one order at once (no expected version): they conflict."""
    results = await asyncio.gather(
        *(orders.add_item(order_id, item(f"p-b{n}", "1.00")) for n in range(size))
    )
    return [str(r["__typename"]) for r in results]


async def test_metrics_move_with_the_work_done(tmp_path: Path) -> None:
    metrics_port = free_port()
    with running_server(tmp_path, {"METRICS_PORT": str(metrics_port)}) as server:
        page = f"{server.url}/metrics"
        before = await scrape(page)  # loopback HOST: open
        staff = server.token(sub="ops", role="staff")
        async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as http:
            orders = Orders(GraphQLClient(http, staff))
            async with graphql_ws(server.ws_url, staff) as ws:
                live = await ws.subscribe("subscription Live { ordersUpdated { id } }")
                placed = [new_id("m") for _ in range(PLACED)]
                for order_id in placed:
                    accepted(await orders.place(order_id))
                await live.events("ordersUpdated", PLACED)
                during = await scrape(page)
                await live.stop()
            # A client's expected version that is not the order's: a conflict answered as such.
            stale = await orders.pay(placed[0], expectedVersion=7)
            assert stale["__typename"] == "ConcurrencyConflict", stale
            # Commands on one order at once: appends refused by the store, decided again.
            bursts: list[str] = []
            for _ in range(5):
                bursts += await _burst(orders, placed[1], 6)
                if value(await scrape(page), "orders_command_conflicts_total", type="AddItem"):
                    break
            query = await http.post(
                "/graphql",
                json={"query": "query Probe { projections { name } }"},
                headers={"authorization": f"Bearer {staff}"},
            )
            assert query.status_code == 200, query.text
            junk = await http.post(
                "/graphql",
                json={"query": "query Junk123 { nope }"},
                headers={"authorization": f"Bearer {staff}"},
            )
            assert junk.json()["errors"], junk.text

        async def unsubscribed() -> bool:
            samples = await scrape(page)
            return value(samples, "orders_ws_subscriptions", field="ordersUpdated") == 0

        await _until(unsubscribed, "the subscription was still counted after it ended")
        after = await scrape(page)
        on_port = await scrape(f"http://127.0.0.1:{metrics_port}/metrics")  # no auth there

        def moved(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        # Commands by type and outcome, exactly as many as were sent.
        assert (
            _commands(after, "PlaceOrder", "accepted") - _commands(before, "PlaceOrder", "accepted")
            == PLACED
        )
        assert moved("orders_commands_total", type="TakePayment", outcome="conflict") == 1
        added = bursts.count("CommandAccepted")
        assert moved("orders_commands_total", type="AddItem", outcome="accepted") == added
        assert moved("orders_commands_total", type="AddItem", outcome="conflict") == (
            len(bursts) - added
        )
        conflicts = moved("orders_command_conflicts_total", type="AddItem")
        assert conflicts >= 1, "no burst ever conflicted"
        assert moved("orders_command_retries_total", type="AddItem") >= conflicts - (
            len(bursts) - added
        )
        # One append per accepted command, and group commits of at least one write each.
        appends = PLACED + added
        assert moved("orders_store_append_duration_seconds_count") == appends
        commits = moved("orders_store_commit_writes_count", store="embedded")
        writes = moved("orders_store_commit_writes_sum", store="embedded")
        assert 1 <= commits <= writes
        assert writes >= appends

        # Requests by operation and outcome; an unchecked name is `other`, never a label.
        assert moved(
            "orders_requests_total", transport="http", operation="Place", outcome="ok"
        ) == (PLACED)
        assert (
            moved("orders_requests_total", transport="http", operation="Probe", outcome="ok") == 1
        )
        assert (
            moved("orders_request_duration_seconds_count", transport="http", operation="Probe") == 1
        )
        operations = {labels["operation"] for labels in labels_of(after, "orders_requests_total")}
        assert "Junk123" not in operations
        assert "other" in operations

        # The websocket: one connection and one ordersUpdated subscription while it was open.
        assert value(during, "orders_ws_connections") - value(before, "orders_ws_connections") == 1
        assert value(during, "orders_ws_subscriptions", field="ordersUpdated") == 1
        assert moved("orders_ws_messages_pushed_total") >= PLACED
        assert value(after, "orders_ws_connections") == value(before, "orders_ws_connections")
        assert moved("orders_requests_total", transport="ws", operation="Live", outcome="ok") == 1

        # The in-process projector applied the events (each command appended at least one).
        async def projected() -> bool:
            samples = await scrape(page)
            applied = value(samples, "orders_projector_events_total", projection="orders")
            return applied - value(
                before, "orders_projector_events_total", projection="orders"
            ) >= (appends)

        await _until(projected, "the projector's events did not move")
        assert value(after, "orders_projector_lag_events", projection="orders") >= 0

        # Every read of the views waited (if only briefly) for a pooled Redis connection.
        assert moved("orders_redis_pool_wait_seconds_count") >= 1

        # METRICS_PORT serves the same metrics.
        assert names(after) <= names(on_port)


@pytest.mark.parametrize(("token_role", "status"), [(None, 401), ("customer", 403), ("staff", 200)])
async def test_metrics_off_loopback_are_staff_only(
    tmp_path: Path, token_role: str | None, status: int
) -> None:
    with running_server(tmp_path, {"HOST": "0.0.0.0"}) as server:
        headers = {}
        if token_role is not None:
            headers["authorization"] = f"Bearer {server.token(sub='u-1', role=token_role)}"
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
            response = await http.get(f"{server.url}/metrics", headers=headers)
        assert response.status_code == status, response.text
        if status == 200:
            assert "orders_commands_total" in response.text
        else:
            assert "orders_" not in response.text


async def _place(server: LiveServer, count: int) -> None:
    staff = server.token(sub="ops", role="staff")
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as http:
        orders = Orders(GraphQLClient(http, staff))
        for _ in range(count):
            accepted(await orders.place(new_id("mp")))


async def test_multiprocess_mode_sums_the_processes_of_a_host(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, each process writes its values there and any one of them
    serves the sum: a second process reports the first one's commands with its own."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    placed = "orders_commands_total"
    with running_server(tmp_path / "one", env) as first:
        await _place(first, 2)
        assert (
            value(
                await scrape(f"{first.url}/metrics"), placed, type="PlaceOrder", outcome="accepted"
            )
            == 2
        )
        with running_server(tmp_path / "two", env) as second:
            await _place(second, 3)
            both = await scrape(f"{second.url}/metrics")
            assert value(both, placed, type="PlaceOrder", outcome="accepted") == 5
            assert value(both, "orders_ws_connections") == 0
    assert any(shared.glob("counter_*.db")), "nothing was written to PROMETHEUS_MULTIPROC_DIR"
    # The stopped processes' live gauges are gone; their counters stay, as Prometheus expects.
    assert not any(shared.glob("gauge_livesum_*.db"))


def _refusals(samples: Samples) -> float:
    return sum(v for (name, _), v in samples.items() if name == "orders_budget_refusals_total")


async def test_budget_refusals_are_counted(tmp_path: Path) -> None:
    env = {"COMMANDS_PER_SECOND": "1", "COMMAND_BURST": "1"}
    with running_server(tmp_path, env) as server:
        page = f"{server.url}/metrics"
        before = await scrape(page)
        customer = server.token(sub="c-1")
        async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as http:
            gql = GraphQLClient(http, customer)
            codes: list[str | None] = []
            for _ in range(4):
                placing = {"customerId": "c-1", "items": [item()], "orderId": new_id("rl")}
                codes += error_codes(await gql.execute(PLACE, {"input": placing}))
        refused = codes.count("RATE_LIMITED")
        assert refused >= 1, "the budget never refused a command"
        after = await scrape(page)
        assert _refusals(after) - _refusals(before) == refused
