"""Tracing's and metrics' overhead counted in CPU instructions: `bench_tracing`'s servers, each
run under valgrind's callgrind over the same place/pay/ship flows, instructions per command by
thread. python -m scripts.bench_instructions --flows 200 --ratios 1 0 --metrics-off

Why: on a small shared machine, CPU time per command moves by ±5% from round to round (the
machine's speed drifts), which is the size of what is measured; instructions executed are the same
from run to run to about 0.2%. They leave out what CPU time also holds (cache misses, the kernel's
work: `bench_tracing` measures that), so the two are read together.

Each server starts under `valgrind --tool=callgrind --instr-atstart=no` (Python runs about 50x
slower), is warmed up, and waits until spans queued during the warm-up are exported; then
instrumentation is switched on (`callgrind_control -i on`) for `--flows` flows and off after the
export delay has passed again, so each server's count holds its commands' spans and nothing else.
Needs valgrind (`apt-get install valgrind`); takes about a minute a server for 200 flows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import uvloop
from rich.console import Console
from rich.progress import Progress

from scripts.bench_tracing import one_round, servers
from scripts.bench_write import Target
from tests.e2e.gql import make_token
from tests.support.processes import REPO_ROOT, free_port

EXPORT_WAIT_S = 7.0
"""Longer than the span processor's default schedule delay (OTEL_BSP_SCHEDULE_DELAY, 5 s)."""


@dataclass
class Counted:
    """One server's instructions over the measured flows, by thread (in start order)."""

    label: str
    commands: int = 0
    threads: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Every thread's instructions."""
        return sum(self.threads)

    def per_command(self, instructions: int) -> float:
        """`instructions` per command, in thousands."""
        return instructions / max(1, self.commands) / 1000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (`bench_tracing`'s targets)."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench_instructions",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--flows", type=int, default=200, help="measured flows (3 commands each)")
    parser.add_argument("--warmup", type=int, default=50, help="flows before measuring")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--ratios", type=float, nargs="*", default=[1.0], metavar="R")
    parser.add_argument("--metrics-off", action="store_true")
    parser.add_argument(
        "--on-tree",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also a tracing-on (100%%) server from this source tree (`git archive` unpacked)",
    )
    args = parser.parse_args(argv)
    args.before = None  # `bench_tracing.servers` reads it too
    return args


def _totals(directory: Path, pattern: str) -> list[int]:
    """The instructions in each thread's dump (`--separate-threads=yes`: one file a thread)."""
    counts = []
    for path in sorted(directory.glob(pattern)):
        match = re.search(rb"^totals: (\d+)", path.read_bytes(), re.MULTILINE)
        counts.append(int(match.group(1)) if match else 0)
    return counts


def _control(env: dict[str, str], prefix: Path, *args: str) -> None:
    subprocess.run(
        ["callgrind_control", f"--vgdb-prefix={prefix}", *args],
        env=env,
        check=True,
        capture_output=True,
    )


async def count(args: argparse.Namespace, port: int, progress: Progress) -> list[Counted]:
    """Each server in turn: start it under callgrind, warm it up, count the measured flows."""
    secret = secrets.token_urlsafe(32)
    token = make_token(secret, sub="bench", role="staff")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        for label, server in servers(Path(tmp), secret, port, args):
            name = Path(server.log_path).stem
            out = Path(tmp) / f"{name}.callgrind"
            prefix = Path(tmp) / f"{name}-vgdb"
            server.command = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                "--separate-threads=yes",
                "--vgdb=yes",
                f"--vgdb-prefix={prefix}",
                f"--callgrind-out-file={out}",
                *server.command,
            ]
            # vgdb finds the server by a file named after USER and HOST (the server's HOST is
            # 127.0.0.1; main sets USER): the same for both.
            env = {**os.environ, "HOST": "127.0.0.1"}
            await asyncio.to_thread(server.start, 600.0)
            try:
                target = Target(label=label, url=server.url, pid=server.pid)
                await one_round(
                    target, "warm-up", args.warmup, args=args, token=token, progress=progress
                )
                await asyncio.sleep(EXPORT_WAIT_S)
                _control(env, prefix, "-i", "on", str(server.pid))
                stats, _ = await one_round(
                    target, "measured", args.flows, args=args, token=token, progress=progress
                )
                await asyncio.sleep(EXPORT_WAIT_S)
                _control(env, prefix, "-i", "off", str(server.pid))
                _control(env, prefix, "-d", str(server.pid))
                await asyncio.sleep(1)
                counted = Counted(label=label, commands=stats.commands)
                counted.threads = _totals(Path(tmp), f"{name}.callgrind.1-*")
                results.append(counted)
            finally:
                server.stop(timeout=60)
    return results


def markdown(counted: Sequence[Counted], args: argparse.Namespace) -> str:
    """The table: instructions per command, the ratio to tracing off, by thread."""
    base = counted[0]
    lines = [
        f"{args.flows} place/pay/ship flows ({base.commands} commands) under callgrind, "
        f"concurrency {args.concurrency}, embedded store, projector in-process:",
        "",
        "| server | instructions/command (k) | vs tracing off | by thread (k/command) |",
        "|---|---:|---:|---|",
    ]
    for c in counted:
        by_thread = ", ".join(f"{c.per_command(n):.0f}" for n in c.threads if c.per_command(n) >= 1)
        lines.append(
            f"| {c.label} | {c.per_command(c.total):.0f} | "
            f"{c.per_command(c.total) / base.per_command(base.total):.3f} | {by_thread} |"
        )
    lines += [
        "",
        "By thread: the event loop's first, then the others (1k or more) as they started.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Count and print the table."""
    args = parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    os.environ["USER"] = os.environ.get("USER") or "bench"  # the servers inherit it
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "tests.support.otlp_receiver", "--port", str(port)], cwd=REPO_ROOT
    )
    try:
        with Progress(console=Console(stderr=True), transient=True) as progress:
            counted = uvloop.run(count(args, port, progress))
    finally:
        receiver.terminate()
        receiver.wait(10)
    print(markdown(counted, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
