"""Memory comes back after websocket subscribers leave: rounds of mixed subscribers on both
protocols (every live field, shared and not, a third of them carrying an unused ~100 KB variable)
opened, served a change, and closed; the server's RSS after the tenth round is within 10% of its
RSS after the second (the first round warms caches and pools up).

RSS is read once the server has reclaimed what a round let go: its reclaimer (`api.http.memory`)
runs about a second after the last close and logs `event=memory_reclaimed` at DEBUG, so the test
waits for that line rather than for a fixed time."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.gql import JSON, GraphQLClient, Orders, accepted, item, new_id
from tests.e2e.ws import Protocol, Subscription, graphql_ws
from tests.support.live_server import LiveServer, running_server

ROUNDS = 10
SOCKETS = 30
PER_SOCKET = 30
"""900 subscribers a round, half of them on each protocol."""
PAD = 100_000
RECLAIMED = b"event=memory_reclaimed"
SETTLE_WITHIN = 30.0
"""Seconds a round's closes may take to be seen and reclaimed: the reclaimer runs about a second
after subscribers leave, at most every 5 s (`api.http.memory`)."""
GROWTH = 1.10
CUSTOMER = "c-memory"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The service with its default settings, logging at DEBUG for the reclaimer's lines."""
    with running_server(tmp_path_factory.mktemp("ws-memory"), {"LOG_LEVEL": "DEBUG"}) as live:
        yield live


def _operation(index: int, order_id: str) -> tuple[str, JSON, bool]:
    """The `index`th operation of a socket: its query, its variables, and whether it answers
    at once (the others wait for a change)."""
    match index % 6:
        case 0:
            query = "subscription($id: ID!) { orderUpdated(id: $id) { id version } }"
            return query, {"id": order_id}, True
        case 1:
            query = "subscription($s: OrderStatus) { ordersUpdated(status: $s) { id } }"
            return query, {"s": "PENDING"}, False
        case 2:
            return "subscription { dashboardStats { totalOrders } }", {}, True
        case 3:
            query = "subscription($id: ID!) { orderEvents(id: $id) { version } }"
            return query, {"id": order_id}, True
        case 4:
            return 'subscription { events(types: ["OrderPlaced"]) { version } }', {}, True
        case _:
            query = "subscription($c: ID) { ordersUpdated(customerId: $c) { id } }"
            return query, {"c": CUSTOMER}, False


async def _subscriber(
    server: LiveServer,
    token: str,
    protocol: Protocol,
    order_id: str,
    tag: str,
    subscribed: asyncio.Queue[list[Subscription]],
    leave: asyncio.Event,
) -> None:
    """One socket's subscriptions, each answered once, then half stopped and the socket closed."""
    async with graphql_ws(server.ws_url, token, protocol) as ws:
        subscriptions: list[tuple[Subscription, bool]] = []
        for index in range(PER_SOCKET):
            query, variables, at_once = _operation(index, order_id)
            if index % 3 == 0:
                variables = {**variables, "pad": f"{tag}-{index}-" + "x" * PAD}
            subscriptions.append((await ws.subscribe(query, variables), at_once))
        for subscription, at_once in subscriptions:
            if at_once:
                await subscription.result(within=30)
        await subscribed.put([sub for sub, at_once in subscriptions if not at_once])
        await leave.wait()
        for subscription, _ in subscriptions[::2]:
            await subscription.stop()


async def _round(server: LiveServer, orders: Orders, order_id: str, number: int) -> None:
    token = server.token(sub="staff-memory", role="staff")
    subscribed: asyncio.Queue[list[Subscription]] = asyncio.Queue()
    leave = asyncio.Event()
    protocols: list[Protocol] = ["graphql-transport-ws", "graphql-ws"]
    sockets = [
        asyncio.create_task(
            _subscriber(
                server, token, protocols[s % 2], order_id, f"{number}-{s}", subscribed, leave
            )
        )
        for s in range(SOCKETS)
    ]
    try:
        waiting = [sub for _ in range(SOCKETS) for sub in await subscribed.get()]
        # A change every ordersUpdated subscriber hears: they are all registered now.
        accepted(await orders.place(new_id("mem"), customer_id=CUSTOMER, items=[item()]))
        for subscription in waiting:
            await subscription.result(within=30)
    finally:
        leave.set()
        await asyncio.gather(*sockets)


def _open_connections(metrics: str) -> float:
    found = re.search(r"^orders_ws_connections (\S+)$", metrics, re.MULTILINE)
    assert found is not None, "no orders_ws_connections on /metrics"
    return float(found.group(1))


def _reclaims_after(log: Path, offset: int) -> bool:
    with log.open("rb") as file:
        file.seek(offset)
        return RECLAIMED in file.read()


async def _settled(server: LiveServer, http: httpx.AsyncClient) -> None:
    """Return once the server has closed every socket of the round and then reclaimed memory.
    Closes hand their memory to the reclaimer after the connection gauge drops, and a release
    always schedules a pass (or joins a pending one), so the first pass logged after the gauge
    reads 0 (or during the request that read it) is one that ran after (nearly) all of the
    round's releases."""
    deadline = time.monotonic() + SETTLE_WITHIN
    log = server.process.log_path
    while True:
        # Where the log ends before asking: on a busy machine the answer that reads 0 can come
        # after the pass that follows the last close has logged its line.
        offset = log.stat().st_size
        if _open_connections((await http.get("/metrics")).text) == 0:
            break
        assert time.monotonic() < deadline, "the round's sockets are still open on the server"
        await asyncio.sleep(0.05)
    while not _reclaims_after(log, offset):
        assert time.monotonic() < deadline, f"no {RECLAIMED.decode()} line after the round"
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_rss_after_ten_rounds_of_subscribers_is_within_10_percent_of_round_two(
    server: LiveServer,
) -> None:
    assert server.process.pid is not None
    process = psutil.Process(server.process.pid)
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0, trust_env=False) as http:
        orders = Orders(GraphQLClient(http, server.token(sub="staff-memory", role="staff")))
        order_id = new_id("mem")
        accepted(await orders.place(order_id, customer_id=CUSTOMER, items=[item()]))
        series: list[float] = []
        for number in range(ROUNDS):
            await _round(server, orders, order_id, number)
            await _settled(server, http)
            series.append(process.memory_info().rss / 2**20)
    shown = ", ".join(f"{rss:.1f}" for rss in series)
    print(f"RSS (MiB) after each round: {shown}")  # the README's figures (pytest -rA shows it)
    assert series[-1] <= series[1] * GROWTH, f"RSS (MiB) after each round: {shown}"
