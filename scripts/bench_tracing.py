"""What telemetry costs the write path: the write benchmark's flows (`scripts.bench_write`)
against servers that differ only in tracing or metrics, in interleaved rounds.

    python -m scripts.bench_tracing --flows 1000 --rounds 9 --metrics-off
    python -m scripts.bench_tracing --before /tmp/before   # also a tree of an earlier commit

Targets: tracing off (no OTEL_* variables; the baseline); tracing on at 100% sampling
(`OTEL_TRACES_SAMPLER=always_on`; `--ratios 1 0.1` adds one at 10%), exporting over OTLP/HTTP
to a receiver that discards (a process of its own, `python -m tests.support.otlp_receiver`);
`--metrics-off`, a server whose prometheus-client instruments record nothing (a switch of this
benchmark only: the service has no setting for it), so the baseline's ratio to it is what
metrics cost; `--before DIR`, a server run from the source tree in DIR
(`git archive <commit> | tar -x -C DIR`) with tracing off, to show that the code paths tracing
adds cost nothing measurable when it is off; `--on-tree DIR...`, tracing-on servers from other
trees (to compare implementations in one run).

Prints each target's medians and, against the baseline, the median of the per-round ratios of
commands/s and of server CPU per command (each round of the baseline comes next to one of each
target, the order reversed every other round, so a machine that slows down or speeds up skews
both alike and no server always follows the same one), with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import uvloop
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from scripts._loadgen import RunStats
from scripts.bench_write import Target, in_round_order, run_round
from tests.e2e.gql import make_token
from tests.support.processes import REPO_ROOT, ServerProcess, free_port

WITHOUT_METRICS = "--serve-without-metrics"
"""Run as `python -m scripts.bench_tracing --serve-without-metrics serve`: `orders serve` with
prometheus-client's instruments recording nothing."""


def _sampler(ratio: float) -> dict[str, str]:
    if ratio >= 1:
        return {"OTEL_TRACES_SAMPLER": "always_on"}
    return {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": str(ratio),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_tracing", description=__doc__)
    parser.add_argument("--flows", type=int, default=1000, help="flows per round (3 commands each)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent connections")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds of each target")
    parser.add_argument("--warmup", type=int, default=200, help="flows before measuring")
    parser.add_argument("--before", type=Path, help="also a server from this source tree")
    parser.add_argument(
        "--on-tree",
        type=Path,
        nargs="*",
        default=[],
        metavar="DIR",
        help="also a tracing-on server (100%% sampled) from each of these source trees",
    )
    parser.add_argument(
        "--metrics-off", action="store_true", help="also a server whose metrics record nothing"
    )
    parser.add_argument(
        "--ratios",
        type=float,
        nargs="*",
        default=[1.0],
        metavar="R",
        help="one tracing-on server per sampling ratio (1: always_on, else "
        "parentbased_traceidratio); none: only tracing off",
    )
    return parser.parse_args(argv)


def _server(root: Path, name: str, secret: str, env: dict[str, str]) -> ServerProcess:
    return ServerProcess(
        data_dir=root / name, jwt_secret=secret, log_path=root / f"{name}.log", env=env
    )


def _tree_server(
    root: Path, name: str, secret: str, tree: Path, env: dict[str, str]
) -> ServerProcess:
    """A server run from the source tree `tree` (`git archive <commit> | tar -x -C DIR`)."""
    server = _server(root, name, secret, {**env, "PYTHONPATH": str(tree)})
    # -P: the modules come from PYTHONPATH (the other tree), not from the cwd.
    server.command = [sys.executable, "-P", "-m", "api", "serve"]
    return server


def servers(
    root: Path, secret: str, port: int, args: argparse.Namespace
) -> list[tuple[str, ServerProcess]]:
    """The targets and their labels, the baseline first (`bench_instructions` runs them too)."""
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
    loopback = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    labelled: list[tuple[str, ServerProcess]] = [("tracing off", _server(root, "off", secret, {}))]
    for ratio in args.ratios:
        on = _server(root, f"on-{ratio}", secret, {**endpoint, **loopback, **_sampler(ratio)})
        labelled.append((f"tracing on, {ratio:.0%} sampled", on))
    if args.metrics_off:
        quiet = _server(root, "no-metrics", secret, {})
        quiet.command = [sys.executable, "-m", "scripts.bench_tracing", WITHOUT_METRICS, "serve"]
        labelled.append(("metrics off, tracing off", quiet))
    if args.before is not None:
        before = _tree_server(root, "before", secret, args.before, {})
        labelled.append((f"tracing off, tree {args.before}", before))
    for n, tree in enumerate(args.on_tree):
        env = {**endpoint, **loopback, **_sampler(1.0)}
        labelled.append(
            (
                f"tracing on, 100% sampled, tree {tree}",
                _tree_server(root, f"t{n}", secret, tree, env),
            )
        )
    return labelled


@dataclass(slots=True)
class Measured:
    """One target's rounds: their stats and the server's CPU seconds in each."""

    label: str
    rounds: list[RunStats] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    def cpu_us_per_command(self, index: int) -> float:
        """Server CPU per command in round `index`, µs."""
        return self.cpu_s[index] / max(1, self.rounds[index].commands) * 1e6

    def median(self, of: str) -> float:
        """The median over the rounds of commands/s, p50/p99 ms or CPU µs per command."""
        values = {
            "throughput": [r.throughput for r in self.rounds],
            "p50": [r.percentile_ms(0.5) for r in self.rounds],
            "p99": [r.percentile_ms(0.99) for r in self.rounds],
            "cpu": [self.cpu_us_per_command(i) for i in range(len(self.rounds))],
        }[of]
        return statistics.median(values)

    def ratios(self, baseline: Measured) -> tuple[float, float]:
        """Medians of the per-round ratios to `baseline`: commands/s, CPU per command."""
        pairs = range(len(self.rounds))
        throughput = statistics.median(
            self.rounds[i].throughput / baseline.rounds[i].throughput for i in pairs
        )
        cpu = statistics.median(
            self.cpu_us_per_command(i) / baseline.cpu_us_per_command(i) for i in pairs
        )
        return throughput, cpu

    def pooled_cpu_us(self) -> float:
        """Server CPU per command over all the rounds together, µs."""
        return sum(self.cpu_s) / max(1, sum(r.commands for r in self.rounds)) * 1e6


async def bench(args: argparse.Namespace, console: Console, port: int) -> list[Measured]:
    """Start the servers (tracing to the receiver on `port`), run the interleaved rounds, stop
    them."""
    secret = secrets.token_urlsafe(32)
    # bench_write's own token outlives MAX_TOKEN_TTL's default: one for an hour.
    token = make_token(secret, sub="bench", role="staff")
    started: list[ServerProcess] = []
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        try:
            targets: list[Target] = []
            for label, server in servers(Path(tmp), secret, port, args):
                started.append(server)
                await asyncio.to_thread(server.start)
                targets.append(Target(label=label, url=server.url, pid=server.pid))
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                refresh_per_second=4,
            ) as progress:
                return await _interleaved(targets, args, token, progress)
        finally:
            for server in started:
                server.stop()


async def one_round(
    target: Target,
    name: str,
    count: int,
    *,
    args: argparse.Namespace,
    token: str,
    progress: Progress,
) -> tuple[RunStats, float | None]:
    """`count` place/pay/ship flows at `target`: their stats and the server's CPU seconds
    (`bench_instructions` runs its flows with it too)."""
    stats, _, server_s = await run_round(
        target,
        name=name,
        count=count,
        concurrency=args.concurrency,
        token=token,
        client="raw",
        progress=progress,
    )
    return stats, server_s


async def _interleaved(
    targets: Sequence[Target], args: argparse.Namespace, token: str, progress: Progress
) -> list[Measured]:
    measured = [Measured(label=t.label) for t in targets]
    for target in targets:
        await one_round(target, "warm-up", args.warmup, args=args, token=token, progress=progress)
    pairs = list(zip(targets, measured, strict=True))
    for round_no in range(1, args.rounds + 1):
        for target, into in in_round_order(pairs, round_no):
            name = f"round {round_no}/{args.rounds}"
            stats, server_s = await one_round(
                target, name, args.flows, args=args, token=token, progress=progress
            )
            into.rounds.append(stats)
            into.cpu_s.append(server_s or 0.0)
    return measured


def markdown(measured: Sequence[Measured], args: argparse.Namespace, load: str) -> str:
    """The table, with each target's ratios to the baseline."""
    base = measured[0]
    lines = [
        f"{args.flows} place/pay/ship flows per round, concurrency {args.concurrency}, embedded "
        f"store, {args.rounds} interleaved rounds; {load}:",
        "",
        "| server | commands/s | p50 ms | p99 ms | server CPU µs/command | commands/s ratio | "
        "CPU/command ratio | pooled CPU ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measured:
        throughput, cpu = m.ratios(base)
        pooled = m.pooled_cpu_us() / base.pooled_cpu_us()
        lines.append(
            f"| {m.label} | {m.median('throughput'):.0f} | {m.median('p50'):.1f} | "
            f"{m.median('p99'):.1f} | {m.median('cpu'):.0f} | {throughput:.3f} | {cpu:.3f} | "
            f"{pooled:.3f} |"
        )
    lines += [
        "",
        "Ratios: medians of the per-round ratios to tracing off (its rounds alongside, the "
        "order reversed every other round); pooled: all rounds' server CPU over all their "
        "commands, against tracing off's.",
    ]
    for m in measured:
        per_round = ", ".join(f"{r.throughput:.0f}" for r in m.rounds)
        cpu_rounds = ", ".join(f"{m.cpu_us_per_command(i):.0f}" for i in range(len(m.rounds)))
        lines.append(f"{m.label}: commands/s per round {per_round}; CPU µs/command {cpu_rounds}  ")
    return "\n".join(lines)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} {five:.1f} {fifteen:.1f}"


def serve_without_metrics(argv: Sequence[str]) -> int:
    """`orders` (`api.wiring.cli`) with every prometheus-client instrument recording nothing: what
    the service would cost without metrics (the calls into `metrics.instruments` remain, each a
    function call and a dictionary lookup)."""
    from prometheus_client import Counter, Gauge, Histogram, Summary

    def nothing(*_: object, **__: object) -> None:
        return None

    for kind, methods in (
        (Counter, ("inc",)),
        (Gauge, ("inc", "dec", "set")),
        (Histogram, ("observe",)),
        (Summary, ("observe",)),
    ):
        for method in methods:
            setattr(kind, method, nothing)
    from api.wiring.cli import main as orders

    sys.argv = ["orders", *argv]
    return orders()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; non-zero exit when any command failed."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == [WITHOUT_METRICS]:
        return serve_without_metrics(arguments[1:])
    args = parse_args(arguments)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console(stderr=True)
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "tests.support.otlp_receiver", "--port", str(port)], cwd=REPO_ROOT
    )
    load_before = _load()
    try:
        measured = uvloop.run(bench(args, console, port))
    finally:
        receiver.terminate()
        receiver.wait(10)
    load = f"load average {load_before} before, {_load()} after"
    sys.stdout.write(markdown(measured, args, load) + "\n")
    failed = False
    for m in measured:
        errors = [e for r in m.rounds for e in r.first_errors]
        failed = failed or any(r.errors for r in m.rounds)
        for error in errors[:2]:
            console.print(f"[red]{m.label}: failed command, e.g.[/] {error}", markup=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
