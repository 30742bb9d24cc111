"""Projection lag benchmark: from an append to its view being visible, under a fixed write load.

    python -m scripts.bench_lag --rate 500 --duration 20

Starts the real server (fresh temporary DATA_DIR, embedded store and embedded Redis, projector in
the process), then runs two things at once for `--duration` seconds:

- the write benchmark's load (place / pay / ship flows, `scripts.bench_write.flow_variables`) paced
  at `--rate` commands per second over keep-alive connections (`scripts._loadgen`);
- a probe that places an order `--probe-rate` times a second and watches an `ordersUpdated`
  subscription (one websocket, filtered on the probe's own customer) for its view.

Lag is the time from the placeOrder's acknowledgement (the append is durable) to the websocket
push that the view holds it (the view's hash is written in the same Lua script that publishes);
a push that arrives before the acknowledgement counts as 0. "sent -> visible" adds the command's
own latency. Prints a markdown table for the README. `--url` targets a running server instead.

Before / after a change: `--tree DIR` serves from another source tree (e.g. main unpacked with
`git archive main | tar -x -C DIR`) with this interpreter; run it and the plain command in turns,
the machine's load changing as little as possible between the two.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from scripts._loadgen import Connection, Endpoint, encode_graphql_post
from scripts.bench_write import PLACE, accepted, flow_variables, staff_token
from tests.support.processes import ServerProcess

log = logging.getLogger(__name__)

PROBE_CUSTOMER = "lag-probe"
WATCH = """subscription($c: ID) { ordersUpdated(customerId: $c) { id version } }"""


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


@dataclass(slots=True, kw_only=True)
class LoadResult:
    """What the paced background load did."""

    commands: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    late_ms: list[float] = field(default_factory=list)  # how far behind its slot each command left


@dataclass(slots=True, kw_only=True)
class ProbeResult:
    """What the probe measured, per probe order."""

    lag_ms: list[float] = field(default_factory=list)
    sent_to_visible_ms: list[float] = field(default_factory=list)
    missing: int = 0


async def paced_load(
    endpoint: Endpoint, token: str, *, rate: float, duration: float, connections: int
) -> LoadResult:
    """Flows of place/pay/ship, each command at its own slot `1/rate` s after the previous one."""
    result = LoadResult()
    run = uuid.uuid4().hex[:8]
    flows: Iterator[int] = itertools.count()
    slots = itertools.count()
    started = time.perf_counter()
    deadline = started + duration
    pool = [await Connection.open(endpoint) for _ in range(connections)]

    async def worker(connection: Connection) -> None:
        for n in flows:
            for query, variables in flow_variables(run, n):
                slot = started + next(slots) / rate
                if slot >= deadline:
                    return
                delay = slot - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent = time.perf_counter()
                result.late_ms.append(max(0.0, sent - slot) * 1000)
                status, body = await connection.request(
                    encode_graphql_post(endpoint, query, variables, token)
                )
                result.latencies_ms.append((time.perf_counter() - sent) * 1000)
                result.commands += 1
                if not accepted(status, body):
                    result.errors += 1

    try:
        await asyncio.gather(*(worker(c) for c in pool))
    finally:
        for connection in pool:
            await connection.close()
    return result


async def _subscribe(ws: ClientConnection, token: str) -> None:
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
    await ws.send(orjson.dumps(init).decode())
    while orjson.loads(await ws.recv())["type"] != "connection_ack":
        pass
    payload = {"query": WATCH, "variables": {"c": PROBE_CUSTOMER}}
    await ws.send(orjson.dumps({"type": "subscribe", "id": "1", "payload": payload}).decode())


async def probe(
    endpoint: Endpoint, ws_url: str, token: str, *, rate: float, duration: float
) -> ProbeResult:
    """Place an order every 1/rate s and time its view's push on `ordersUpdated`."""
    result = ProbeResult()
    visible: dict[str, float] = {}
    arrived: dict[str, asyncio.Event] = {}
    run = uuid.uuid4().hex[:8]
    async with connect(
        ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], proxy=None
    ) as ws:
        await _subscribe(ws, token)
        await asyncio.sleep(0.2)  # the subscription is registered before the first probe

        async def read() -> None:
            async for raw in ws:
                now = time.perf_counter()
                message = orjson.loads(raw)
                if message.get("type") == "ping":
                    await ws.send(orjson.dumps({"type": "pong"}).decode())
                if message.get("type") != "next":
                    continue
                order = message["payload"]["data"]["ordersUpdated"]
                if order["version"] == 1 and order["id"] not in visible:
                    visible[order["id"]] = now
                    arrived.setdefault(order["id"], asyncio.Event()).set()

        reader = asyncio.create_task(read())
        connection = await Connection.open(endpoint)
        try:
            started = time.perf_counter()
            for n in itertools.count():
                slot = started + n / rate
                if slot >= started + duration:
                    break
                await asyncio.sleep(max(0.0, slot - time.perf_counter()))
                order_id = f"probe-{run}-{n}"
                item = {"productId": "sku-1", "name": "Probe", "price": "1.00", "qty": 1}
                variables: dict[str, object] = {
                    "input": {"orderId": order_id, "customerId": PROBE_CUSTOMER, "items": [item]}
                }
                raw = encode_graphql_post(endpoint, PLACE, variables, token)
                sent = time.perf_counter()
                status, body = await connection.request(raw)
                acked = time.perf_counter()
                if not accepted(status, body):
                    raise RuntimeError(f"probe placeOrder failed: {status} {body[:300]!r}")
                event = arrived.setdefault(order_id, asyncio.Event())
                try:
                    async with asyncio.timeout(5):
                        await event.wait()
                except TimeoutError:
                    result.missing += 1
                    continue
                result.lag_ms.append(max(0.0, visible[order_id] - acked) * 1000)
                result.sent_to_visible_ms.append((visible[order_id] - sent) * 1000)
        finally:
            await connection.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return result


def markdown(args: argparse.Namespace, load: LoadResult, probed: ProbeResult) -> str:
    """The results as a markdown table."""

    def ms(values: Sequence[float], fraction: float) -> str:
        return f"{percentile(values, fraction):.1f}"

    achieved = load.commands / args.duration if args.duration else 0.0
    rows = [
        "| measure | value |",
        "|---|---|",
        f"| background load (target) | {args.rate:.0f} commands/s |",
        f"| background load (achieved) | {achieved:.0f} commands/s, {load.errors} errors |",
        f"| load command latency p50 / p99 | {ms(load.latencies_ms, 0.5)} / "
        f"{ms(load.latencies_ms, 0.99)} ms |",
        f"| load commands sent > 10 ms behind their slot | "
        f"{sum(1 for v in load.late_ms if v > 10)} of {len(load.late_ms)} |",
        f"| probes (placeOrder, watched on ordersUpdated) | {len(probed.lag_ms)} seen, "
        f"{probed.missing} not seen within 5 s |",
        f"| **lag ack -> view visible p50 / p99 / max** | **{ms(probed.lag_ms, 0.5)} / "
        f"{ms(probed.lag_ms, 0.99)} / {ms(probed.lag_ms, 1.0)} ms** |",
        f"| sent -> view visible p50 / p99 | {ms(probed.sent_to_visible_ms, 0.5)} / "
        f"{ms(probed.sent_to_visible_ms, 0.99)} ms |",
        f"| load average (1 min) after the run | {os.getloadavg()[0]:.2f} |",
    ]
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="background commands/s")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of measurement")
    parser.add_argument("--probe-rate", type=float, default=25.0, help="probe orders/s")
    parser.add_argument("--connections", type=int, default=32, help="load connections")
    parser.add_argument("--url", help="a running server (needs --jwt-secret)")
    parser.add_argument("--jwt-secret", default=os.environ.get("JWT_SECRET"))
    parser.add_argument(
        "--tree", type=Path, help="serve from this source tree (e.g. main unpacked) instead"
    )
    return parser.parse_args(argv)


async def bench(args: argparse.Namespace, url: str, secret: str) -> str:
    """Run the load and the probe together; the markdown table."""
    endpoint = Endpoint.from_url(url)
    token = staff_token(secret)
    ws_url = url.replace("http://", "ws://") + "/graphql"
    load, probed = await asyncio.gather(
        paced_load(
            endpoint, token, rate=args.rate, duration=args.duration, connections=args.connections
        ),
        probe(endpoint, ws_url, token, rate=args.probe_rate, duration=args.duration),
    )
    return markdown(args, load, probed)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: `python -m scripts.bench_lag`."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.url:
        if not args.jwt_secret:
            sys.stderr.write("--url needs the server's --jwt-secret (or JWT_SECRET)\n")
            return 2
        table = asyncio.run(bench(args, args.url, args.jwt_secret))
    else:
        secret = secrets.token_urlsafe(32)
        with tempfile.TemporaryDirectory(prefix="bench-lag-") as tmp:
            env = {"LOG_LEVEL": "WARNING"}
            command = None
            if args.tree is not None:
                # -P: not this checkout (the working directory) but the tree, from PYTHONPATH
                env["PYTHONPATH"] = str(args.tree.resolve())
                command = [sys.executable, "-P", "-m", "api", "serve"]
            server = ServerProcess(
                command=command,
                data_dir=Path(tmp) / "data",
                jwt_secret=secret,
                log_path=Path(tmp) / "server.log",
                env=env,
            )
            with server:
                log.info("server up at %s; measuring for %.0f s", server.url, args.duration)
                table = asyncio.run(bench(args, server.url, secret))
    sys.stdout.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
