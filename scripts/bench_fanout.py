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
server; the subscribers are raw asyncio sockets (`scripts._ws_subscriber`), a few µs a message,
since a websocket library's client would spend more CPU receiving than the server sending. Server
CPU is reported with its system share (the kernel's socket writes). Prints a markdown table.

It runs on the server's default settings, the way many clients would come: the sockets come from
`--addresses` loopback addresses (127.0.0.1, .2, ...), each opening at most
HANDSHAKES_PER_ADDRESS at a time (a socket counts as its address's until acknowledged,
MAX_ANONYMOUS_WEBSOCKETS_PER_ADDRESS); they hold staff tokens (the operator's dashboards: every
subscriber of one staff query shares one execution), one identity per `--sockets-per-identity`
sockets, within MAX_WEBSOCKETS_PER_IDENTITY though staff are held only to the global caps
(README "Budgets"). Each operation has a UUID id, as the graphql-ws client names them. This
process and the server (which inherits it) get a soft open-files limit for the sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from scripts._loadgen import Connection, Endpoint, encode_graphql_post
from scripts._ws_subscriber import NextHandler, SubscriberProtocol, open_subscriber
from scripts.bench_lag import percentile
from scripts.bench_write import PLACE, accepted
from tests.e2e.gql import make_token
from tests.support.processes import ServerProcess

log = logging.getLogger(__name__)

HANDSHAKES_PER_ADDRESS = 32
"""Sockets one client address opens at once (the server's default for sockets not acknowledged
yet from one address is 64)."""

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
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


@dataclass(slots=True, kw_only=True)
class Deliveries:
    """When each subscriber saw each order (perf_counter seconds)."""

    field_name: str
    by_order: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # dashboardStats: per subscriber, (time, totalOrders) of every message
    stats: list[list[tuple[float, int]]] = field(default_factory=list)
    messages: int = 0
    failures: list[str] = field(default_factory=list)  # error / complete messages, first few


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
    server_system_s: float = 0.0  # of server_cpu_s, in the kernel (socket writes, mostly)
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


def staff_tokens(secret: str, subscribers: int, per_identity: int) -> list[str]:
    """One staff token per `per_identity` subscribers: operators' dashboards, each identity with
    no more sockets than a customer may hold (MAX_WEBSOCKETS_PER_IDENTITY)."""
    identities = max(1, -(-subscribers // per_identity))
    # An hour: within the server's MAX_TOKEN_TTL, and longer than any run.
    return [
        make_token(secret, sub=f"dashboard-{n}", role="staff", ttl=3600.0)
        for n in range(identities)
    ]


def _recorder(deliveries: Deliveries) -> NextHandler:
    """What each `next` message does: note when its subscriber saw the order (or the stats)."""
    by_order, stats = deliveries.by_order, deliveries.stats
    orders = deliveries.field_name == "ordersUpdated"

    def record(index: int, now: float, payload: dict[str, object]) -> None:
        deliveries.messages += 1
        data = payload.get("data")
        if not isinstance(data, dict):
            deliveries.failures.append(orjson.dumps(payload).decode())
            return
        if orders:
            order = data["ordersUpdated"]
            if order["version"] == 1:
                by_order[order["id"]].append(now)
        else:
            stats[index].append((now, data["dashboardStats"]["totalOrders"]))

    return record


async def connect_all(
    args: argparse.Namespace, endpoint: Endpoint, tokens: list[str], deliveries: Deliveries
) -> list[SubscriberProtocol]:
    """Open the subscribers from `--addresses` loopback addresses, each address at most
    HANDSHAKES_PER_ADDRESS at a time (within MAX_ANONYMOUS_WEBSOCKETS_PER_ADDRESS: a socket
    counts as its address's until acknowledged)."""
    addresses = [f"127.0.0.{n}" for n in range(1, args.addresses + 1)]
    gates = {address: asyncio.Semaphore(HANDSHAKES_PER_ADDRESS) for address in addresses}
    record = _recorder(deliveries)
    query = QUERIES[args.field]

    def ended(why: str) -> None:
        deliveries.failures.append(why)

    async def one(index: int) -> SubscriberProtocol:
        address = addresses[index % len(addresses)]
        token = tokens[index // args.sockets_per_identity]
        # The graphql-ws client names each operation with a UUID; `--same-ids` numbers them.
        operation_id = "1" if args.same_ids else str(uuid.uuid4())
        protocol = SubscriberProtocol(index, token, query, record, ended, operation_id)
        async with gates[address]:
            return await open_subscriber(endpoint.host, endpoint.port, address, protocol)

    return await asyncio.gather(*(one(i) for i in range(args.subscribers)))


async def _wait_for_pushes(
    args: argparse.Namespace, deliveries: Deliveries, acked: list[tuple[str, float]], base: int
) -> None:
    """Stragglers: every push is in, or ten seconds have passed."""
    deadline = time.perf_counter() + 10.0
    while time.perf_counter() < deadline:
        if args.field == "ordersUpdated":
            done = all(len(deliveries.by_order[o]) >= args.subscribers for o, _ in acked)
        else:
            target = base + len(acked)
            done = all(s and s[-1][1] >= target for s in deliveries.stats)
        if done:
            return
        await asyncio.sleep(0.1)


def _collect(
    args: argparse.Namespace,
    result: Result,
    deliveries: Deliveries,
    acked: list[tuple[str, float]],
    base: int,
) -> None:
    result.commands = len(acked)
    result.errors = round(args.rate * args.duration) - len(acked)
    if args.field == "ordersUpdated":
        for order_id, ack in acked:
            seen = deliveries.by_order.get(order_id, [])
            result.latencies_ms.extend(max(0.0, t - ack) * 1000 for t in seen)
            result.missing += args.subscribers - len(seen)
    else:
        result.latencies_ms, result.missing = _stats_latencies(deliveries, acked, base)
    result.messages = deliveries.messages
    result.failures = len(deliveries.failures)
    for failure in deliveries.failures[:3]:
        log.warning("subscription ended: %s", failure[:300])


async def bench(args: argparse.Namespace, url: str, secret: str, pid: int) -> Result:
    """Connect the subscribers, run the load, collect the latencies."""
    endpoint = Endpoint.from_url(url)
    tokens = staff_tokens(secret, args.subscribers, args.sockets_per_identity)
    load_token = make_token(secret, sub="bench-load", role="staff", ttl=3600.0)
    deliveries = Deliveries(field_name=args.field)
    deliveries.stats = [[] for _ in range(args.subscribers)]
    # The server's own connections and caches warm up before the baseline reading.
    warm = await place_paced(endpoint, load_token, rate=20, duration=0.5)
    await asyncio.sleep(1.0)
    rss_before = rss_kib(pid)
    log.info("server pid %d", pid)
    started = time.perf_counter()
    subscribers = await connect_all(args, endpoint, tokens, deliveries)
    connect_s = time.perf_counter() - started
    await asyncio.sleep(2.0 + args.subscribers / 5000)  # subscribed, first stats delivered
    result = Result(
        subscribers=args.subscribers,
        connect_s=connect_s,
        rss_before_kib=rss_before,
        rss_subscribed_kib=rss_kib(pid),
    )
    log.info(
        "%d subscribers in %.1f s; RSS %d -> %d KiB; loading at %.0f/s for %.0f s",
        args.subscribers,
        connect_s,
        rss_before,
        result.rss_subscribed_kib,
        args.rate,
        args.duration,
    )
    (server_user, server_system), client_cpu = cpu_split(pid), time.process_time()
    with profiled(pid, args.profile, args.duration):
        try:
            acked = await place_paced(endpoint, load_token, rate=args.rate, duration=args.duration)
            await _wait_for_pushes(args, deliveries, acked, len(warm))
            user, system = cpu_split(pid)
            result.server_system_s = system - server_system
            result.server_cpu_s = user - server_user + result.server_system_s
            result.client_cpu_s = time.process_time() - client_cpu
            _collect(args, result, deliveries, acked, len(warm))
        finally:
            for subscriber in subscribers:
                subscriber.close()
    return result


@contextlib.contextmanager
def profiled(pid: int, output: str | None, duration: float) -> Iterator[None]:
    """py-spy records the server while the block runs (when `output` names a file)."""
    if output is None:
        yield
        return
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [str(py_spy), "record", "--pid", str(pid), "--output", output, "--format"]
    command += ["speedscope" if output.endswith(".json") else "flamegraph"]
    command += ["--duration", str(int(duration)), "--rate", "200", "--nonblocking"]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        _, err = spy.communicate(timeout=60)
        if spy.returncode:
            log.warning("py-spy failed: %s", err.decode(errors="replace")[-500:])


def markdown(args: argparse.Namespace, result: Result) -> str:
    """The results as a markdown table."""

    def ms(fraction: float) -> str:
        return f"{percentile(result.latencies_ms, fraction):.1f}"

    messages = max(1, result.messages)
    per_message = 1e6 * result.server_cpu_s / messages
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
        f"({per_message:.1f} µs, of which system {1e6 * result.server_system_s / messages:.1f}) |",
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
    parser.add_argument(
        "--addresses", type=int, default=8, help="loopback addresses the sockets come from"
    )
    parser.add_argument(
        "--sockets-per-identity", type=int, default=10, help="subscribers sharing one token"
    )
    parser.add_argument(
        "--same-ids",
        action="store_true",
        help="every subscriber's operation id is 1 (they then share one frame); by default each "
        "has a UUID, as the graphql-ws client gives it",
    )
    parser.add_argument(
        "--server-path",
        help="run the server from this source tree instead (e.g. `git archive main` unpacked, "
        "for a before/after comparison)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the server (for comparisons only: the benchmark's figures are on "
        "the defaults)",
    )
    parser.add_argument("--profile", help="py-spy the server during the load into this file")
    return parser.parse_args(argv)


def raise_open_files(needed: int) -> None:
    """Lift this process's soft limit on open files (the server inherits it) to what `needed`
    sockets take, within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < want:
            log.warning(
                "open files limited to %d: fewer than %d subscribers will connect", hard, needed
            )


def server_env(args: argparse.Namespace) -> dict[str, str]:
    """The server's environment: its defaults, quiet; from `--server-path`'s sources if given."""
    env = {"LOG_LEVEL": "WARNING"}
    env.update(setting.split("=", 1) for setting in args.server_env)
    if args.server_path:
        env["PYTHONPATH"] = str(Path(args.server_path).resolve())
        env["PYTHONSAFEPATH"] = "1"  # `-m` must not put this checkout first on the path
    return env


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: `python -m scripts.bench_fanout`."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise_open_files(args.subscribers)
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        server = ServerProcess(
            data_dir=Path(tmp) / "data",
            jwt_secret=secret,
            log_path=Path(tmp) / "server.log",
            env=server_env(args),
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
