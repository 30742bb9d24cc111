"""Fan-out benchmark: many websocket subscribers on one serving process, under a paced load.

    python -m scripts.bench_fanout --subscribers 1000 --rate 10 --duration 20

Starts the real server (fresh temporary DATA_DIR, embedded store and Redis, projector in the
process), opens `--subscribers` graphql-transport-ws connections, each subscribed to
`ordersUpdated` (or `dashboardStats` with `--field dashboardStats`), then places orders paced at
`--rate` a second for `--duration` seconds.

Push latency is the time from a placeOrder's acknowledgement (the append is durable) to a
subscriber receiving the message that shows it: the order's first view on `ordersUpdated`, or
the first `dashboardStats` whose `totalOrders` counts it (stats are coalesced, at most about 10 a
second, so that field adds up to ~100 ms by design). One sample per order and subscriber; a push
that arrives before the acknowledgement counts as 0. The server's resident memory (VmRSS of the
serving process; the embedded Redis is a process of its own and not counted) is read before the
subscribers connect and once they all are subscribed: the difference over their number is the
memory per connection. Subscribers and load run in this one process, on the same machine as the
server: on 2 cores, receiving 10,000 messages a second costs this client more CPU than the server
spends sending them, so the figures are an upper bound. Prints a markdown table.

It runs on the server's default settings. The subscribers and the load hold staff tokens (the
operator's dashboards and tools): staff are held only to the global caps (MAX_WEBSOCKETS, ...),
not to the per-identity budgets that keep one customer from starving another (README
"Budgets"), so 1,000 sockets on one staff subject are within bounds where a customer token
would be limited to MAX_WEBSOCKETS_PER_IDENTITY. The sockets open at most 50 at a time, within
MAX_ANONYMOUS_WEBSOCKETS_PER_ADDRESS (a socket counts as its address's until acknowledged).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from scripts._loadgen import Connection, Endpoint, encode_graphql_post
from scripts.bench_lag import percentile
from scripts.bench_write import PLACE, accepted
from tests.e2e.gql import make_token
from tests.processes import ServerProcess

log = logging.getLogger(__name__)

QUERIES = {
    "ordersUpdated": "subscription { ordersUpdated { id version } }",
    "dashboardStats": "subscription { dashboardStats { totalOrders } }",
}


def rss_kib(pid: int) -> int:
    """The resident set of process `pid`, in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True, kw_only=True)
class Deliveries:
    """When each subscriber saw each order (perf_counter seconds)."""

    field_name: str
    by_order: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # dashboardStats: per subscriber, (time, totalOrders) of every message
    stats: list[list[tuple[float, int]]] = field(default_factory=list)
    messages: int = 0
    failures: list[str] = field(default_factory=list)  # error / complete messages, first few


class Subscriber:
    """One websocket with one subscription; its reader records arrivals."""

    def __init__(self, ws: ClientConnection, index: int, deliveries: Deliveries) -> None:
        self.ws = ws
        self.index = index
        self.deliveries = deliveries
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, ws_url: str, token: str, index: int, deliveries: Deliveries) -> Subscriber:
        ws = await connect(
            ws_url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            proxy=None,
            open_timeout=60,
            ping_interval=None,
            max_queue=None,
        )
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await ws.send(orjson.dumps(init).decode())
        while orjson.loads(await ws.recv())["type"] != "connection_ack":
            pass
        query = QUERIES[deliveries.field_name]
        await ws.send(
            orjson.dumps({"type": "subscribe", "id": "1", "payload": {"query": query}}).decode()
        )
        subscriber = cls(ws, index, deliveries)
        subscriber.task = asyncio.create_task(subscriber.read())
        return subscriber

    async def read(self) -> None:
        deliveries = self.deliveries
        stats = deliveries.stats[self.index] if deliveries.field_name == "dashboardStats" else []
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                now = time.perf_counter()
                message = orjson.loads(raw)
                kind = message.get("type")
                if kind == "ping":
                    await self.ws.send('{"type":"pong"}')
                    continue
                if kind in ("error", "complete"):
                    deliveries.failures.append(raw if isinstance(raw, str) else raw.decode())
                if kind != "next":
                    continue
                deliveries.messages += 1
                data = message["payload"].get("data")
                if data is None:
                    deliveries.failures.append(raw if isinstance(raw, str) else raw.decode())
                    continue
                if deliveries.field_name == "ordersUpdated":
                    order = data["ordersUpdated"]
                    if order["version"] == 1:
                        deliveries.by_order[order["id"]].append(now)
                else:
                    stats.append((now, data["dashboardStats"]["totalOrders"]))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@dataclass(slots=True, kw_only=True)
class Result:
    """What one run measured."""

    subscribers: int
    connect_s: float
    rss_before_kib: int
    rss_subscribed_kib: int
    commands: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    missing: int = 0
    messages: int = 0
    failures: int = 0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0


async def place_paced(
    endpoint: Endpoint, token: str, *, rate: float, duration: float
) -> list[tuple[str, float]]:
    """Places orders at `rate` a second; (order id, acknowledgement time) for each accepted."""
    run = uuid.uuid4().hex[:8]
    connection = await Connection.open(endpoint)
    acked: list[tuple[str, float]] = []
    started = time.perf_counter()
    try:
        n = 0
        while (slot := started + n / rate) < started + duration:
            await asyncio.sleep(max(0.0, slot - time.perf_counter()))
            order_id = f"fan-{run}-{n}"
            item = {"productId": "sku-1", "name": "Fan-out", "price": "1.00", "qty": 1}
            variables: dict[str, object] = {
                "input": {"orderId": order_id, "customerId": "fanout", "items": [item]}
            }
            status, body = await connection.request(
                encode_graphql_post(endpoint, PLACE, variables, token)
            )
            if accepted(status, body):
                acked.append((order_id, time.perf_counter()))
            else:
                log.warning("placeOrder failed: %s %r", status, body[:200])
            n += 1
    finally:
        await connection.close()
    return acked


def _stats_latencies(
    deliveries: Deliveries, acked: list[tuple[str, float]], base_total: int
) -> tuple[list[float], int]:
    latencies: list[float] = []
    missing = 0
    for per_subscriber in deliveries.stats:
        for k, (_, ack) in enumerate(acked, start=1):
            seen = next((t for t, total in per_subscriber if total >= base_total + k), None)
            if seen is None:
                missing += 1
            else:
                latencies.append(max(0.0, seen - ack) * 1000)
    return latencies, missing


async def bench(args: argparse.Namespace, url: str, secret: str, pid: int) -> Result:
    """Connect the subscribers, run the load, collect the latencies."""
    endpoint = Endpoint.from_url(url)
    # An hour: within the server's MAX_TOKEN_TTL, and longer than any run.
    token = make_token(secret, sub="bench", role="staff", ttl=3600.0)
    ws_url = url.replace("http://", "ws://") + "/graphql"
    deliveries = Deliveries(field_name=args.field)
    deliveries.stats = [[] for _ in range(args.subscribers)]
    # The server's own connections and caches warm up before the baseline reading.
    warm = await place_paced(endpoint, token, rate=20, duration=0.5)
    await asyncio.sleep(1.0)
    rss_before = rss_kib(pid)
    log.info("server pid %d", pid)
    started = time.perf_counter()
    gate = asyncio.Semaphore(50)

    async def one(index: int) -> Subscriber:
        async with gate:
            return await Subscriber.open(ws_url, token, index, deliveries)

    subscribers = await asyncio.gather(*(one(i) for i in range(args.subscribers)))
    connect_s = time.perf_counter() - started
    await asyncio.sleep(2.0)  # subscriptions registered, first stats delivered
    rss_subscribed = rss_kib(pid)
    base_total = len(warm)
    result = Result(
        subscribers=args.subscribers,
        connect_s=connect_s,
        rss_before_kib=rss_before,
        rss_subscribed_kib=rss_subscribed,
    )
    log.info(
        "%d subscribers in %.1f s; RSS %d -> %d KiB; loading at %.0f/s for %.0f s",
        args.subscribers,
        connect_s,
        rss_before,
        rss_subscribed,
        args.rate,
        args.duration,
    )
    server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
    try:
        acked = await place_paced(endpoint, token, rate=args.rate, duration=args.duration)
        result.commands = len(acked)
        result.errors = round(args.rate * args.duration) - len(acked)
        # Stragglers: every push is in, or five seconds have passed.
        deadline = time.perf_counter() + 5.0
        while time.perf_counter() < deadline:
            if args.field == "ordersUpdated":
                done = all(len(deliveries.by_order[o]) >= args.subscribers for o, _ in acked)
            else:
                target = base_total + len(acked)
                done = all(s and s[-1][1] >= target for s in deliveries.stats)
            if done:
                break
            await asyncio.sleep(0.1)
        if args.field == "ordersUpdated":
            for order_id, ack in acked:
                seen = deliveries.by_order.get(order_id, [])
                result.latencies_ms.extend(max(0.0, t - ack) * 1000 for t in seen)
                result.missing += args.subscribers - len(seen)
        else:
            result.latencies_ms, result.missing = _stats_latencies(deliveries, acked, base_total)
        result.messages = deliveries.messages
        result.failures = len(deliveries.failures)
        for failure in deliveries.failures[:3]:
            log.warning("subscription ended: %s", failure[:300])
        result.server_cpu_s = cpu_seconds(pid) - server_cpu
        result.client_cpu_s = time.process_time() - client_cpu
    finally:
        await asyncio.gather(*(s.close() for s in subscribers))
    return result


def markdown(args: argparse.Namespace, result: Result) -> str:
    """The results as a markdown table."""

    def ms(fraction: float) -> str:
        return f"{percentile(result.latencies_ms, fraction):.1f}"

    per_message = 1e6 * result.server_cpu_s / max(1, result.messages)
    per_connection = (result.rss_subscribed_kib - result.rss_before_kib) / result.subscribers
    rows = [
        "| measure | value |",
        "|---|---|",
        f"| subscribers (one process, `{args.field}`) | {result.subscribers} "
        f"(connected in {result.connect_s:.1f} s) |",
        f"| load | placeOrder at {args.rate:.0f}/s for {args.duration:.0f} s: "
        f"{result.commands} accepted, {result.errors} failed |",
        f"| messages received | {result.messages:,} ({result.missing} expected pushes missing, "
        f"{result.failures} subscriptions ended) |",
        f"| **push latency, ack -> received, p50 / p99 / max** | **{ms(0.5)} / {ms(0.99)} / "
        f"{ms(1.0)} ms** |",
        f"| server CPU during the load (per message pushed) | {result.server_cpu_s:.1f} s "
        f"({per_message:.0f} µs) |",
        f"| this client's CPU (subscribers + load) | {result.client_cpu_s:.1f} s |",
        f"| server RSS before / with the subscribers | {result.rss_before_kib / 1024:.1f} / "
        f"{result.rss_subscribed_kib / 1024:.1f} MiB |",
        f"| **server RSS per connection** | **{per_connection:.1f} KiB** |",
        f"| load average (1 min) after the run | {os.getloadavg()[0]:.2f} |",
    ]
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--field", choices=sorted(QUERIES), default="ordersUpdated")
    parser.add_argument("--rate", type=float, default=10.0, help="placeOrder commands/s")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: `python -m scripts.bench_fanout`."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        server = ServerProcess(
            data_dir=Path(tmp) / "data",
            jwt_secret=secret,
            log_path=Path(tmp) / "server.log",
            env={"LOG_LEVEL": "WARNING"},
        )
        with server:
            assert server.pid is not None
            result = asyncio.run(bench(args, server.url, secret, server.pid))
            if result.failures:
                log.warning("server log (tail):\n%s", server.log_tail())
    sys.stdout.write(markdown(args, result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
