"""The fault suite's harness: a fresh server subprocess per test (faults damage what they touch),
started as a user starts it, with its own DATA_DIR, secret and log.

Each test breaks one part for real (kills a process, fills a disk, empties a Redis) while clients
keep talking to the service over HTTP and websockets, and asserts what they saw at every moment:
a right answer or the retryable UNAVAILABLE error, never a wrong one, then recovery without a
restart of the service.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.gql import JSON, GraphQLClient, Orders, error_codes, make_token
from tests.support.processes import ServerProcess


@dataclass(slots=True, kw_only=True)
class Service:
    """One server under test: where it listens, its data, its log, and tokens for it."""

    process: ServerProcess
    data_dir: Path
    jwt_secret: str
    killed: bool = False

    def kill(self) -> None:
        """kill -9 the service itself."""
        assert self.process.pid is not None
        self.killed = True
        kill_hard(self.process.pid)

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    def token(self, *, sub: str = "staff-1", role: str = "staff") -> str:
        return make_token(self.jwt_secret, sub=sub, role=role)

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


@contextmanager
def running_service(
    root: Path, *, env: Mapping[str, str] | None = None, wait_healthy: bool = True
) -> Iterator[Service]:
    """A server on `root/data` until the block ends; stopped like Ctrl-C, and it must stop cleanly
    (a hang past the bound is a failure, not a kill hidden in teardown)."""
    secret = secrets.token_urlsafe(32)
    process = ServerProcess(
        data_dir=root / "data",
        jwt_secret=secret,
        log_path=root / f"server-{time.monotonic_ns()}.log",
        env=dict(env or {}),
    )
    if wait_healthy:
        process.start()
    else:
        process.data_dir.mkdir(parents=True, exist_ok=True)
        process._spawn(process.command, process._environment())
    service = Service(process=process, data_dir=root / "data", jwt_secret=secret)
    try:
        yield service
    finally:
        code = process.stop(timeout=STOP_BOUND)
        clean = (0, -2, 130, None) + ((-9,) if service.killed else ())
        assert code in clean, f"server exited with {code}\n{process.log_tail()}"


STOP_BOUND = 10.0
"""How long a stopping server may take before the harness kills it (and the test fails)."""


def kill_hard(pid: int) -> None:
    """SIGKILL, as an operator's `kill -9`."""
    os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def until(
    check: Callable[[], Awaitable[bool]], within: float, what: str, every: float = 0.05
) -> float:
    """Wait (bounded) until `check()` holds; returns the seconds it took."""
    import asyncio

    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(every)
    return time.monotonic() - start


def assert_right_or_unavailable(result: JSON, what: str) -> bool:
    """A response is either a clean answer (True) or only UNAVAILABLE errors, retryable, with
    no data in their place (False); anything else fails the test."""
    codes = error_codes(result)
    if not codes:
        return True
    assert set(codes) == {"UNAVAILABLE"}, f"{what}: {result}"
    for error in result["errors"]:
        assert error["extensions"]["retryAfter"] >= 1, error
    data = result.get("data")
    assert data is None or all(v is None for v in data.values()), f"{what}: partial {result}"
    return False


async def health(http: httpx.AsyncClient, token: str) -> tuple[int, dict[str, Any]]:
    """/healthz's status and details (as staff)."""
    response = await http.get("/healthz", headers={"Authorization": f"Bearer {token}"})
    body: dict[str, Any] = response.json()
    return response.status_code, body


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """A fresh server on the embedded defaults."""
    with running_service(tmp_path) as live:
        yield live


@pytest.fixture
async def http(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url, timeout=15.0, trust_env=False) as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient, service: Service) -> GraphQLClient:
    return GraphQLClient(http, service.token())


@pytest.fixture
def orders(gql: GraphQLClient) -> Orders:
    return Orders(gql)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the server's log tail to a failing test's report."""
    report = yield
    live = getattr(item, "funcargs", {}).get("service")
    if report.failed and isinstance(live, Service):
        report.sections.append(("server log (tail)", live.process.log_tail(80)))
    return report
