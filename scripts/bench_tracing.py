"""What tracing costs the write path: the write benchmark's flows (`scripts.bench_write`) against
servers that differ only in tracing, in interleaved rounds.

    python -m scripts.bench_tracing --flows 1000 --rounds 5
    python -m scripts.bench_tracing --before /tmp/before   # also a tree of an earlier commit

Targets: tracing off (no OTEL_* variables); tracing on at 100% sampling
(`OTEL_TRACES_SAMPLER=always_on`; `--ratios 1 0.1` adds one at 10%), exporting over OTLP/HTTP
to a receiver that discards (a process of its own, `python -m tests.otlp_receiver`); and with
`--before DIR` a server run from the source tree in DIR (`git archive <commit> | tar -x -C DIR`)
with tracing off, to show that the code paths tracing adds cost nothing measurable when it is
off. Prints the medians and the median of the per-round ratios to tracing off.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import uvloop
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from scripts.bench_write import Summary, Target, pair_ratio, run_interleaved, summarize
from tests.e2e.gql import make_token
from tests.processes import REPO_ROOT, ServerProcess, free_port


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
    server.command = [sys.executable, "-P", "-m", "api.cli", "serve"]
    return server


async def bench(args: argparse.Namespace, console: Console, port: int) -> list[Summary]:
    """Start the servers (tracing to the receiver on `port`), run the interleaved rounds, stop
    them."""
    secret = secrets.token_urlsafe(32)
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
    loopback = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    started: list[ServerProcess] = []
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        root = Path(tmp)
        try:
            servers = [("tracing off", _server(root, "off", secret, {}))]
            for ratio in args.ratios:
                sampler = _sampler(ratio)
                on = _server(root, f"on-{ratio}", secret, {**endpoint, **loopback, **sampler})
                servers.append((f"tracing on, {ratio:.0%} sampled", on))
            if args.before is not None:
                before = _tree_server(root, "before", secret, args.before, {})
                servers.append((f"tracing off, tree {args.before}", before))
            for n, tree in enumerate(args.on_tree):
                env = {**endpoint, **loopback, **_sampler(1.0)}
                on = _tree_server(root, f"tree-{n}", secret, tree, env)
                servers.append((f"tracing on, 100% sampled, tree {tree}", on))
            targets: list[Target] = []
            for label, server in servers:
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
                gathered = await run_interleaved(
                    targets,
                    flows=args.flows,
                    concurrency=args.concurrency,
                    rounds=args.rounds,
                    warmup=args.warmup,
                    # bench_write's own token outlives MAX_TOKEN_TTL's default: one for an hour.
                    token=make_token(secret, sub="bench", role="staff"),
                    client="raw",
                    progress=progress,
                )
            return [summarize(g) for g in gathered]
        finally:
            for server in started:
                server.stop()


def markdown(summaries: Sequence[Summary], args: argparse.Namespace) -> str:
    """The table, and each target's ratio to tracing off."""
    off = summaries[0]
    lines = [
        f"{args.flows} place/pay/ship flows per round, concurrency {args.concurrency}, embedded "
        f"store, median of {args.rounds} interleaved rounds:",
        "",
        "| server | commands/s | p50 ms | p99 ms | server CPU µs/command | / tracing off |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        cpu = "" if s.server_us_per_command is None else f"{s.server_us_per_command:.0f}"
        ratio = pair_ratio(s, off)
        lines.append(
            f"| {s.label} | {s.throughput:.0f} | {s.p50_ms:.1f} | {s.p99_ms:.1f} | {cpu} | "
            f"{ratio:.3f} |"
        )
    lines.append("")
    for s in summaries:
        per_round = ", ".join(f"{x:.0f}" for x in s.round_throughputs)
        lines.append(f"{s.label}: commands/s per round {per_round}  ")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; non-zero exit when any command failed."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console(stderr=True)
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "tests.otlp_receiver", "--port", str(port)], cwd=REPO_ROOT
    )
    try:
        summaries = uvloop.run(bench(args, console, port))
    finally:
        receiver.terminate()
        receiver.wait(10)
    sys.stdout.write(markdown(summaries, args) + "\n")
    for s in summaries:
        for error in s.first_errors[:2]:
            console.print(f"[red]{s.label}: failed command, e.g.[/] {error}", markup=True)
    return 1 if any(s.errors for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
