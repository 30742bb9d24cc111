"""Write benchmark: N place/pay/ship flows over HTTP against the server and a no-op baseline.

    python -m scripts.bench_write --flows 2000 --concurrency 32

Starts the real server (fresh temporary DATA_DIR, embedded defaults) and the baseline app (the same
strawberry stack with resolvers that do nothing), drives the same flows at both over keep-alive
connections, and prints commands/s and p50/p99 latency as a markdown table for the README. Each
figure is the median of several rounds. `--url` targets a server that is already running instead.
`--store esdb` also starts the repository's EventStoreDB-compatible gRPC test server and points the
server's ESDB_URL at it (its speed is the embedded store's behind Python gRPC, not EventStoreDB's);
`--server-env ESDB_URL=...` targets a real EventStoreDB. `--store postgres` runs the server on a
throwaway PostgreSQL database (DATABASE_URL) and, in the same interleaved rounds, an embedded
server to compare with; it reports the appends per commit the log shows (group commit).

The order a command returns: `--compare-order` measures the same server twice in interleaved
rounds, the mutations selecting only the command's result and selecting `order { ... }` (every
field of the order but its history) too: what folding the order on the write side costs.

    python -m scripts.bench_write --flows 1000 --compare-order --no-baseline

Long orders: `--amend N` puts N `addItem` / `removeItem` commands (alternately, N rounded up to
even) between the place and the pay of every flow, so orders grow past the snapshot interval, and
`--snapshot-every 50 20` runs one embedded server per interval (SNAPSHOT_EVERY) in the same
interleaved rounds: what taking snapshots more often costs the write path.

    python -m scripts.bench_write --flows 100 --amend 60 --snapshot-every 50 20 --no-baseline

Before and after: `--server-path DIR` also starts the server (and the baseline) from another source
tree (`git archive main` unpacked), measured in the same interleaved rounds. `--profile DIR` has
py-spy record every started server over its measured rounds (collapsed stacks, one file each), so
the full path and the baseline can be profiled alike and diffed.

    python -m scripts.bench_write --no-projectors --flows 1000 --server-path /tmp/before
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import jwt
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from scripts import _postgres
from scripts._loadgen import Endpoint, Flow, RunStats, encode_graphql_post, run_flows
from tests.support.processes import (
    EsdbTestServerProcess,
    ServerProcess,
    baseline_command,
    serve_command,
)

log = logging.getLogger(__name__)

RESULT = """__typename
  ... on CommandAccepted { orderId version position eventIds }
  ... on CommandError { code message }"""

ORDER_SELECTION = """
  ... on CommandAccepted {
    order {
      id customerId status items { productId name price qty } itemCount total trackingId carrier
      createdAt updatedAt version position
    }
  }"""
"""Every field of `CommandAccepted.order` but its history (which reads the event store)."""


def mutation(name: str, input_type: str, field: str, *, select_order: bool = False) -> str:
    """A mutation document selecting the result (and the order it left, with `select_order`)."""
    selection = RESULT + (ORDER_SELECTION if select_order else "")
    return f"mutation {name}($input: {input_type}!) {{ {field}(input: $input) {{ {selection} }} }}"


def documents(select_order: bool) -> dict[str, str]:
    """The flow's mutation documents by command."""
    return {
        "place": mutation("Place", "PlaceOrderInput", "placeOrder", select_order=select_order),
        "pay": mutation("Pay", "TakePaymentInput", "takePayment", select_order=select_order),
        "ship": mutation("Ship", "ShipOrderInput", "shipOrder", select_order=select_order),
        "add": mutation("Add", "AddItemInput", "addItem", select_order=select_order),
        "remove": mutation("Remove", "RemoveItemInput", "removeItem", select_order=select_order),
    }


PLACE = documents(select_order=False)["place"]
"""placeOrder selecting the result only (other benchmarks place orders with it)."""


COMMAND_PATH_PARTS = ("store", "writes")
"""The /healthz parts a server without projectors needs ok to take commands: nothing fills its
views (on the embedded store the projectors' groups live in the serving process), so its `views`
part stays unavailable and /healthz answers 503 for as long as it runs."""


def staff_token(secret: str, ttl: int = 6 * 3600) -> str:
    """A staff token for the run, valid for `ttl` seconds (within the server's MAX_TOKEN_TTL)."""
    return jwt.encode(
        {"sub": "bench", "role": "staff", "exp": int(time.time()) + ttl}, secret, "HS256"
    )


def amendments(
    order_id: str, count: int, docs: dict[str, str]
) -> list[tuple[str, dict[str, object]]]:
    """`count` (rounded up to even) commands that add a line and remove it again, in turns: the
    order grows by `count` events and ends with the total it started with."""
    commands: list[tuple[str, dict[str, object]]] = []
    for k in range(0, count, 2):
        product = f"extra-{k}"
        item = {"productId": product, "name": "Extra", "price": "1.25", "qty": 1}
        commands.append((docs["add"], {"input": {"orderId": order_id, "item": item}}))
        commands.append((docs["remove"], {"input": {"orderId": order_id, "productId": product}}))
    return commands


def flow_variables(
    run: str, n: int, amend: int = 0, *, select_order: bool = False
) -> list[tuple[str, dict[str, object]]]:
    """One order's life: place (two lines), `amend` amendments, pay the total, ship."""
    order_id = f"bench-{run}-{n}"
    docs = documents(select_order)
    items = [
        {"productId": "sku-1", "name": "Widget", "price": "12.50", "qty": 2},
        {"productId": "sku-2", "name": "Gadget", "price": "4.99", "qty": 1},
    ]
    return [
        (
            docs["place"],
            {"input": {"orderId": order_id, "customerId": f"c-{n % 97}", "items": items}},
        ),
        *amendments(order_id, amend, docs),
        (
            docs["pay"],
            {
                "input": {
                    "orderId": order_id,
                    "amount": "29.99",
                    "method": "card",
                    "transactionId": f"tx-{order_id}",
                }
            },
        ),
        (
            docs["ship"],
            {"input": {"orderId": order_id, "trackingId": f"trk-{n}", "carrier": "DHL"}},
        ),
    ]


def accepted(status: int, body: bytes) -> bool:
    """A 200 whose result is a CommandAccepted."""
    return status == 200 and b'"CommandAccepted"' in body and b'"errors"' not in body


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A server under test."""

    label: str
    url: str
    pid: int | None = None
    """The server's process id when this script started it: its CPU time is measured too."""
    select_order: bool = False
    """Whether the mutations select `CommandAccepted.order`."""
    profile: Path | None = None
    """Where py-spy writes this server's collapsed stacks over the measured rounds, if asked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """Medians over the rounds of one target."""

    label: str
    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int
    first_errors: tuple[str, ...]
    loadgen_us_per_command: float
    server_us_per_command: float | None
    round_throughputs: tuple[float, ...] = ()
    """Commands/s of each measured round, in order."""


async def _httpx_flows(
    url: str,
    flows: Sequence[Sequence[tuple[str, dict[str, object]]]],
    token: str,
    concurrency: int,
    on_progress: Callable[[int], None],
) -> RunStats:
    """The same run with httpx, to show what the load generator itself costs."""
    stats = RunStats()
    pending = iter(flows)
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, trust_env=False) as client:

        async def worker() -> None:
            for flow in pending:
                for query, variables in flow:
                    started = time.perf_counter_ns()
                    response = await client.post(
                        "/graphql", json={"query": query, "variables": variables}, headers=headers
                    )
                    stats.latencies_ns.append(time.perf_counter_ns() - started)
                    if not accepted(response.status_code, response.content):
                        stats.errors += 1
                        if len(stats.first_errors) < 5:
                            stats.first_errors.append(response.text[:300])
                on_progress(len(flow))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        stats.elapsed_s = time.perf_counter() - started
    return stats


@dataclass(slots=True, kw_only=True)
class Rounds:
    """What the measured rounds of one target gathered so far."""

    target: Target
    results: list[RunStats]
    loadgen_cpu_s: float = 0.0
    server_cpu_s: float | None = 0.0


async def run_round(
    target: Target,
    *,
    name: str,
    count: int,
    concurrency: int,
    token: str,
    client: str,
    progress: Progress,
    amend: int = 0,
) -> tuple[RunStats, float, float | None]:
    """One run of `count` fresh flows: its stats, the load generator's CPU seconds and the
    server's (None when unknown)."""
    endpoint = Endpoint.from_url(target.url)
    run = uuid.uuid4().hex[:10]
    plans = [flow_variables(run, n, amend, select_order=target.select_order) for n in range(count)]
    task = progress.add_task(f"{target.label}: {name}", total=sum(len(p) for p in plans))

    def advance(commands: int, task_id: TaskID = task) -> None:
        progress.advance(task_id, commands)

    encoded: list[Flow] = [
        [encode_graphql_post(endpoint, q, v, token) for q, v in plan] for plan in plans
    ]
    cpu_before = _own_cpu_seconds()
    server_before = _process_cpu_seconds(target.pid)
    if client == "httpx":
        stats = await _httpx_flows(target.url, plans, token, concurrency, advance)
    else:
        stats = await run_flows(
            endpoint, encoded, concurrency=concurrency, success=accepted, on_progress=advance
        )
    loadgen = _own_cpu_seconds() - cpu_before
    server_after = _process_cpu_seconds(target.pid)
    progress.remove_task(task)
    if stats.errors:
        log.warning("%s %s: %d failed commands", target.label, name, stats.errors)
    server = None if server_before is None or server_after is None else server_after - server_before
    return stats, loadgen, server


T = TypeVar("T")


def in_round_order(targets: Sequence[T], round_no: int) -> Sequence[T]:
    """The targets in the order round `round_no` (from 1) measures them: reversed every other
    round (A, B, B, A, A, B, ...), so no target always runs right after another. On this machine
    the second of two identical servers in a fixed order read about 4% cheaper."""
    return targets if round_no % 2 else targets[::-1]


async def run_interleaved(
    targets: Sequence[Target],
    *,
    flows: int,
    concurrency: int,
    rounds: int,
    warmup: int,
    token: str,
    client: str,
    progress: Progress,
    amend: int = 0,
) -> list[Rounds]:
    """Warm every target up, then `rounds` times one round of each target in turn
    (`in_round_order`), so a machine that speeds up or slows down during the run skews every
    target alike."""
    gathered = [Rounds(target=t, results=[]) for t in targets]
    with contextlib.ExitStack() as spies:
        if warmup:
            await _warm_up(
                targets,
                warmup=warmup,
                concurrency=concurrency,
                token=token,
                client=client,
                progress=progress,
                amend=amend,
            )
        for target in targets:
            if target.profile is not None and target.pid is not None:
                spies.enter_context(profiled(target.pid, target.profile))
        for round_no in range(1, rounds + 1):
            for rounds_of in in_round_order(gathered, round_no):
                stats, loadgen, server = await run_round(
                    rounds_of.target,
                    name=f"round {round_no}/{rounds}",
                    count=flows,
                    concurrency=concurrency,
                    token=token,
                    client=client,
                    progress=progress,
                    amend=amend,
                )
                rounds_of.results.append(stats)
                rounds_of.loadgen_cpu_s += loadgen
                if rounds_of.server_cpu_s is not None and server is not None:
                    rounds_of.server_cpu_s += server
                else:
                    rounds_of.server_cpu_s = None
    return gathered


async def _warm_up(
    targets: Sequence[Target],
    *,
    warmup: int,
    concurrency: int,
    token: str,
    client: str,
    progress: Progress,
    amend: int,
) -> None:
    """One unmeasured round of `warmup` flows per target."""
    for target in targets:
        await run_round(
            target,
            name="warm-up",
            count=warmup,
            concurrency=concurrency,
            token=token,
            client=client,
            progress=progress,
            amend=amend,
        )


@contextlib.contextmanager
def profiled(pid: int, output: Path) -> Iterator[None]:
    """py-spy records process `pid` (every thread) while the block runs, as collapsed stacks
    (`--format raw`, one `frame;frame;... count` line per stack) into `output`."""
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [str(py_spy), "record", "--pid", str(pid), "--output", str(output)]
    command += ["--format", "raw", "--rate", "100", "--threads", "--nonblocking"]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        _, err = spy.communicate(timeout=60)
        if spy.returncode:
            log.warning("py-spy failed: %s", err.decode(errors="replace")[-500:])


def summarize(gathered: Rounds) -> Summary:
    """Medians over one target's rounds; CPU per command over all of them."""
    results = gathered.results
    commands = max(1, sum(r.commands for r in results))
    return Summary(
        label=gathered.target.label,
        throughput=statistics.median(r.throughput for r in results),
        p50_ms=statistics.median(r.percentile_ms(0.50) for r in results),
        p99_ms=statistics.median(r.percentile_ms(0.99) for r in results),
        errors=sum(r.errors for r in results),
        first_errors=tuple(e for r in results for e in r.first_errors)[:5],
        loadgen_us_per_command=gathered.loadgen_cpu_s / commands * 1e6,
        server_us_per_command=None
        if gathered.server_cpu_s is None
        else gathered.server_cpu_s / commands * 1e6,
        round_throughputs=tuple(r.throughput for r in results),
    )


def pair_ratio(full: Summary, baseline: Summary) -> float:
    """The median of the per-round ratios full / baseline (rounds ran back to back in pairs)."""
    return statistics.median(
        f / b for f, b in zip(full.round_throughputs, baseline.round_throughputs, strict=True) if b
    )


def _process_cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system, every thread) of process `pid` so far, from Linux's /proc; None
    when unknown. Work the server does in the background after a round (projectors catching
    up) counts towards the next round or not at all, so rounds should be long."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU time of this process (the load generator) alone, not of the servers it started."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def markdown(summaries: Sequence[Summary], args: argparse.Namespace) -> str:
    """The README table."""
    commands = len(flow_variables("", 0, args.amend))
    shape = f"place/{args.amend} amendments/pay/ship" if args.amend else "place/pay/ship"
    lines = [
        f"{args.flows} {shape} flows ({args.flows * commands} commands), "
        f"{args.concurrency} concurrent keep-alive clients, "
        f"median of {args.rounds} interleaved rounds, "
        f"{os.cpu_count()} CPUs, client `{args.client}`:",
        "",
        "| target | commands/s | p50 (ms) | p99 (ms) | failed | server CPU/command "
        "| load generator CPU/command |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        server = "n/a" if s.server_us_per_command is None else f"{s.server_us_per_command:.0f} µs"
        lines.append(
            f"| {s.label} | {s.throughput:,.0f} | {s.p50_ms:.1f} | {s.p99_ms:.1f} | {s.errors} "
            f"| {server} | {s.loadgen_us_per_command:.0f} µs |"
        )
    if (
        len(summaries) == 2
        and summaries[1].throughput
        and not hasattr(args, "commit_stats")
        and not args.snapshot_every
        and not args.compare_order
        and not args.server_path
    ):
        ratio = summaries[0].throughput / summaries[1].throughput
        pairs = ", ".join(
            f"{f / b:.2f}"
            for f, b in zip(
                summaries[0].round_throughputs, summaries[1].round_throughputs, strict=True
            )
            if b
        )
        lines += [
            "",
            f"Full command path / no-op baseline: **{pair_ratio(*summaries):.2f}x** the throughput "
            f"(median of the per-round ratios {pairs}; ratio of the medians {ratio:.2f}x). Rounds "
            "ran interleaved, baseline and full path in turn, the order reversed every other "
            "round.",
        ]
        full_cpu, base_cpu = summaries[0].server_us_per_command, summaries[1].server_us_per_command
        if full_cpu and base_cpu:
            # Less sensitive than commands/s to other work taking the cores between rounds.
            lines.append(
                f"Server CPU per command, baseline / full path: **{base_cpu / full_cpu:.2f}x** "
                f"({base_cpu:.0f} / {full_cpu:.0f} µs)."
            )
    stats: _postgres.CommitStats | None = getattr(args, "commit_stats", None)
    if stats is not None and len(summaries) >= 2 and summaries[1].throughput:
        lines += [
            "",
            f"PostgreSQL / embedded SQLite: **{pair_ratio(summaries[0], summaries[1]):.2f}x** the "
            f"commands/s (median of the per-round ratios). PostgreSQL log: {stats.events:,} "
            f"events in {stats.appends:,} appends over {stats.commits:,} commits, "
            f"**{stats.appends_per_commit:.1f} appends per commit** (group commit).",
        ]
    if args.snapshot_every and len(args.snapshot_every) >= 2:
        first = summaries[0]
        for every, other in zip(args.snapshot_every[1:], summaries[1:], strict=False):
            if not first.throughput:
                break
            pairs = ", ".join(
                f"{o / f:.2f}"
                for o, f in zip(other.round_throughputs, first.round_throughputs, strict=True)
                if f
            )
            lines += [
                "",
                f"Snapshots every {every} / every {args.snapshot_every[0]} events: "
                f"**{pair_ratio(other, first):.2f}x** the commands/s (median of the per-round "
                f"ratios {pairs}), {other.server_us_per_command or 0:.0f} / "
                f"{first.server_us_per_command or 0:.0f} µs of server CPU per command.",
            ]
    if args.server_path and len(summaries) >= 2 and summaries[1].throughput:
        lines += ["", *_before_lines(summaries)]
    if getattr(args, "compare_env", None) and len(summaries) >= 2 and summaries[0].throughput:
        lines += ["", *_compared_lines(summaries, args)]
    if args.compare_order and len(summaries) >= 2 and summaries[0].throughput:
        without, selecting = summaries[0], summaries[1]
        pairs = ", ".join(
            f"{w / o:.2f}"
            for w, o in zip(selecting.round_throughputs, without.round_throughputs, strict=True)
            if o
        )
        lines += [
            "",
            f"Selecting `order {{ ... }}` / not: **{pair_ratio(selecting, without):.2f}x** the "
            f"commands/s (median of the per-round ratios {pairs}), "
            f"{selecting.server_us_per_command or 0:.0f} / "
            f"{without.server_us_per_command or 0:.0f} µs of server CPU per command.",
        ]
    load = os.getloadavg()[0]
    lines += [
        "",
        f"(1-minute load average at the end: {load:.1f}; other processes skew the figures.)",
    ]
    return "\n".join(lines)


def _before_lines(summaries: Sequence[Summary]) -> list[str]:
    """This tree against `--server-path`'s: full paths, baselines, and each against its own
    baseline (summaries: full, full before[, baseline, baseline before])."""
    full, before = summaries[0], summaries[1]
    lines = [
        f"Full path, this tree / before: **{pair_ratio(full, before):.2f}x** the commands/s "
        f"(median of the per-round ratios), {full.server_us_per_command or 0:.0f} / "
        f"{before.server_us_per_command or 0:.0f} µs of server CPU per command."
    ]
    if len(summaries) >= 4 and summaries[2].throughput and summaries[3].throughput:
        base, base_before = summaries[2], summaries[3]
        lines.append(
            f"Baseline, this tree / before: {pair_ratio(base, base_before):.2f}x the commands/s, "
            f"{base.server_us_per_command or 0:.0f} / "
            f"{base_before.server_us_per_command or 0:.0f} µs of server CPU per command."
        )
        for name, f, b in (("this tree", full, base), ("before", before, base_before)):
            cpu = (
                f"{b.server_us_per_command / f.server_us_per_command:.2f}x"
                if f.server_us_per_command and b.server_us_per_command
                else "n/a"
            )
            lines.append(
                f"Full path / its baseline, {name}: **{pair_ratio(f, b):.2f}x** the commands/s, "
                f"server CPU per command baseline / full {cpu}."
            )
    return lines


def _compared_lines(summaries: Sequence[Summary], args: argparse.Namespace) -> list[str]:
    """The `--compare-env` server against the plain one (and each against the baseline)."""
    plain, compared = summaries[0], summaries[1]
    lines = [
        f"With {' '.join(args.compare_env)} / without: **{pair_ratio(compared, plain):.2f}x** the "
        f"commands/s (median of the per-round ratios), {compared.server_us_per_command or 0:.0f} "
        f"/ {plain.server_us_per_command or 0:.0f} µs of server CPU per command."
    ]
    if len(summaries) >= 3 and summaries[2].throughput:
        baseline = summaries[2]
        lines.append(
            f"Against the no-op baseline: without {pair_ratio(plain, baseline):.2f}x, with "
            f"{pair_ratio(compared, baseline):.2f}x (medians of the per-round ratios)."
        )
    return lines


def _variants(
    args: argparse.Namespace, env: dict[str, str], store: str
) -> list[tuple[str, str, dict[str, str]]]:
    """The servers to start: (directory name, label, environment) each."""
    if args.snapshot_every:
        return [
            (
                f"server-every-{every}",
                f"{store}, snapshots every {every}",
                {**env, "SNAPSHOT_EVERY": str(every)},
            )
            for every in args.snapshot_every
        ]
    variants = [("server", store, env)]
    if args.compare_env:
        extra = dict(pair.split("=", 1) for pair in args.compare_env)
        variants.append(
            ("server-compared", f"{store}, {' '.join(args.compare_env)}", {**env, **extra})
        )
    if args.server_path:
        tree = Path(args.server_path).resolve()
        variants.append(("server-before", f"{store}, {tree.name}", {**env, **_tree_env(tree)}))
    return variants


def _baselines(args: argparse.Namespace) -> list[tuple[str, str, Path | None]]:
    """The baselines to start: (directory name, label, source tree or None for this one) each."""
    baselines: list[tuple[str, str, Path | None]] = [
        ("baseline", "no-op baseline (same stack)", None)
    ]
    if args.server_path:
        tree = Path(args.server_path).resolve()
        baselines.append(("baseline-before", f"no-op baseline ({tree.name})", tree))
    return baselines


def tree_baseline(tree: Path) -> str:
    """The source of `tree`'s baseline module."""
    return (tree / "scripts" / "baseline.py").read_text()


def _tree_env(tree: Path | None) -> dict[str, str]:
    """The environment that runs a server from source tree `tree` (None: this checkout)."""
    if tree is None:
        return {}
    # `-m` must not put the working directory (this checkout) first on the path.
    return {"PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"}


def _profile_path(args: argparse.Namespace, name: str) -> Path | None:
    """Where py-spy writes server `name`'s stacks with `--profile`."""
    if not args.profile:
        return None
    directory = Path(args.profile)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{name}.txt"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_write", description=__doc__)
    parser.add_argument("--flows", type=int, default=2000, help="flows per round (3 commands each)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent connections")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="measured rounds of each target, interleaved with the other's (medians reported)",
    )
    parser.add_argument("--warmup", type=int, default=200, help="flows before measuring")
    parser.add_argument("--url", help="benchmark this running server instead of starting one")
    parser.add_argument(
        "--jwt-secret",
        default=os.environ.get("JWT_SECRET"),
        help="the running server's JWT_SECRET (with --url; default: $JWT_SECRET)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="K=V",
        help="extra environment for the started server(s), e.g. ESDB_URL=...",
    )
    parser.add_argument(
        "--store",
        choices=("embedded", "esdb", "postgres"),
        default="embedded",
        help="esdb: start the EventStoreDB-compatible test server and use it (ESDB_URL); "
        "postgres: a throwaway database on TEST_POSTGRES_URL's server (DATABASE_URL), measured "
        "beside the embedded store",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the no-op baseline")
    parser.add_argument(
        "--amend",
        type=int,
        default=0,
        metavar="N",
        help="addItem/removeItem commands between place and pay in every flow (rounded up to even)",
    )
    parser.add_argument(
        "--snapshot-every",
        type=int,
        nargs="+",
        metavar="EVENTS",
        help="one embedded server per snapshot interval (SNAPSHOT_EVERY), in interleaved rounds",
    )
    parser.add_argument(
        "--compare-env",
        nargs="+",
        metavar="K=V",
        help="also measure a second embedded server with this extra environment, in interleaved "
        "rounds (e.g. an application setting switched off)",
    )
    parser.add_argument(
        "--compare-order",
        action="store_true",
        help="measure the server a second time with the mutations selecting "
        "CommandAccepted.order, in interleaved rounds",
    )
    parser.add_argument(
        "--no-projectors",
        action="store_true",
        help="serve without in-process projectors (`serve --no-projectors`): the command path "
        "alone, without the read side's work competing for the same process",
    )
    parser.add_argument(
        "--server-path",
        metavar="DIR",
        help="also start the server and the baseline from this source tree (e.g. `git archive "
        "main` unpacked), in interleaved rounds: a before/after comparison",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="py-spy every started server over its measured rounds into DIR/<server>.txt "
        "(collapsed stacks)",
    )
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator: the lean raw-socket client (default) or httpx, for comparison",
    )
    args = parser.parse_args(argv)
    if args.url and not args.jwt_secret:
        parser.error("--url needs --jwt-secret (or JWT_SECRET) to sign its tokens")
    for pair in args.server_env:
        if "=" not in pair:
            parser.error(f"--server-env takes K=V, got {pair!r}")
    if any("=" not in pair for pair in args.compare_env or ()):
        parser.error("--compare-env takes K=V")
    if (args.snapshot_every or args.compare_env or args.server_path) and (
        args.url or args.store != "embedded"
    ):
        parser.error(
            "--snapshot-every, --compare-env and --server-path start embedded servers: not with "
            "--url or --store"
        )
    if args.server_path and (args.snapshot_every or args.compare_env or args.compare_order):
        parser.error("--server-path compares two trees: not with other comparisons")
    if args.amend < 0:
        parser.error("--amend takes a count >= 0")
    if args.store == "esdb" and (
        args.url or any(p.startswith("ESDB_URL=") for p in args.server_env)
    ):
        parser.error("--store esdb starts its own test server: not with --url or ESDB_URL")
    return args


async def bench(args: argparse.Namespace, console: Console) -> list[Summary]:
    """Start what is needed, run every target, stop what was started."""
    secret: str = args.jwt_secret or secrets.token_urlsafe(32)
    env = dict(pair.split("=", 1) for pair in args.server_env)
    token = staff_token(secret)
    started: list[ServerProcess | EsdbTestServerProcess] = []
    database: str | None = None
    with tempfile.TemporaryDirectory(prefix="bench-write-") as tmp:
        root = Path(tmp)
        try:
            targets: list[Target] = []
            if args.url:
                targets.append(Target(label="full command path", url=args.url.rstrip("/")))
            else:
                external_esdb = "ESDB_URL" in env  # a real EventStoreDB the caller named
                if args.store == "esdb":
                    esdb = EsdbTestServerProcess(data_dir=root / "esdb", log_path=root / "esdb.log")
                    started.append(esdb)
                    await asyncio.to_thread(esdb.start)
                    env["ESDB_URL"] = esdb.url
                if args.store == "postgres":
                    database = await _postgres.create_database("bench_write")
                    env["DATABASE_URL"] = database
                store = {
                    "esdb": "EventStoreDB test server",
                    "embedded": "embedded SQLite",
                    "postgres": "PostgreSQL",
                }[args.store]
                if external_esdb:
                    store = "EventStoreDB"
                if args.no_projectors:
                    store += ", no in-process projectors"
                for name, label, server_env in _variants(args, env, store):
                    server = ServerProcess(
                        data_dir=root / name,
                        jwt_secret=secret,
                        log_path=root / f"{name}.log",
                        env=server_env,
                        ready_parts=COMMAND_PATH_PARTS if args.no_projectors else None,
                    )
                    if args.no_projectors:
                        server.command = [*serve_command(), "--no-projectors"]
                    started.append(server)
                    await asyncio.to_thread(server.start)
                    targets.append(
                        Target(
                            label=f"full command path ({label})",
                            url=server.url,
                            pid=server.pid,
                            profile=_profile_path(args, name),
                        )
                    )
                    if args.compare_order:
                        targets.append(
                            Target(
                                label=f"full command path ({label}), selecting the order",
                                url=server.url,
                                pid=server.pid,
                                select_order=True,
                            )
                        )
            if database is not None:
                embedded_env = {k: v for k, v in env.items() if k != "DATABASE_URL"}
                embedded = ServerProcess(
                    data_dir=root / "embedded",
                    jwt_secret=secret,
                    log_path=root / "embedded.log",
                    env=embedded_env,
                    ready_parts=COMMAND_PATH_PARTS if args.no_projectors else None,
                )
                if args.no_projectors:
                    embedded.command = [*serve_command(), "--no-projectors"]
                started.append(embedded)
                await asyncio.to_thread(embedded.start)
                label = "embedded SQLite" + (", no in-process projectors" * args.no_projectors)
                targets.append(
                    Target(label=f"full command path ({label})", url=embedded.url, pid=embedded.pid)
                )
            if not args.no_baseline:
                for name, label, tree in _baselines(args):
                    baseline = ServerProcess(
                        data_dir=root / name,
                        jwt_secret=secret,
                        log_path=root / f"{name}.log",
                        env={**env, **_tree_env(tree)},
                        # it runs no projectors: nothing it serves reads the views
                        ready_parts=COMMAND_PATH_PARTS,
                    )
                    baseline.command = baseline_command()
                    if tree is not None and "def main" not in tree_baseline(tree):
                        # a tree from before the baseline was served as `serve` serves it
                        baseline.command = [
                            sys.executable,
                            "-m",
                            "uvicorn",
                            "--factory",
                            "scripts.baseline:noop_app_from_env",
                            "--port",
                            str(baseline.port),
                            "--loop",
                            "uvloop",
                            "--http",
                            "httptools",
                            "--no-access-log",
                            "--app-dir",
                            str(tree),
                        ]
                    started.append(baseline)
                    await asyncio.to_thread(baseline.start)
                    targets.append(
                        Target(
                            label=label,
                            url=baseline.url,
                            pid=baseline.pid,
                            profile=_profile_path(args, name),
                        )
                    )

            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                refresh_per_second=4,
            ) as progress:
                gathered = await run_interleaved(
                    targets,
                    amend=args.amend,
                    flows=args.flows,
                    concurrency=args.concurrency,
                    rounds=args.rounds,
                    warmup=args.warmup,
                    token=token,
                    client=args.client,
                    progress=progress,
                )
            summaries = [summarize(g) for g in gathered]
            if database is not None:
                args.commit_stats = await _postgres.commit_stats(database)
            return summaries
        finally:
            for process in reversed(started):  # the servers before the store they use
                if process.stop() not in (0, None):
                    console.print(f"[yellow]{process.command[2]} exited badly; log tail:[/]")
                    console.print(process.log_tail(20), markup=False)
            if database is not None:
                await _postgres.drop_database(database)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; non-zero exit when any command failed."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console(stderr=True)
    try:
        import uvloop

        summaries = uvloop.run(bench(args, console))
    except ImportError:
        summaries = asyncio.run(bench(args, console))
    sys.stdout.write(markdown(summaries, args) + "\n")
    failed = [s for s in summaries if s.errors]
    for s in failed:
        console.print(f"[red]{s.label}: {s.errors} failed commands, e.g.:[/]")
        for error in s.first_errors:
            console.print(f"  {error}", markup=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
