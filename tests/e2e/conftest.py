"""Fixtures: one real server per test session, HTTP and websocket clients, tokens.

The server runs exactly as a user starts it (`python -m api.cli serve`) on a free port with a fresh
DATA_DIR and the embedded defaults; tests share it and stay independent through unique order ids.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from scripts._server import ServerProcess
from tests.e2e.gql import GraphQLClient, Orders, make_token


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveServer:
    """Where the session's server listens, and the secret its tokens are signed with."""

    url: str
    ws_url: str
    jwt_secret: str
    process: ServerProcess

    def token(self, *, sub: str, role: str, ttl: float = 3600.0) -> str:
        """A valid token for this server."""
        return make_token(self.jwt_secret, sub=sub, role=role, ttl=ttl)


def _extra_server_env() -> dict[str, str]:
    """`E2E_SERVER_ENV="K=V K2=V2"` configures the server under test (e.g. `ESDB_URL=...` to run
    the suite against EventStoreDB); unset, the server uses the embedded defaults."""
    pairs = os.environ.get("E2E_SERVER_ENV", "").split()
    bad = [pair for pair in pairs if "=" not in pair]
    if bad:
        raise pytest.UsageError(f"E2E_SERVER_ENV takes K=V pairs, got {bad}")
    return dict(pair.split("=", 1) for pair in pairs)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real server, started once per session and stopped with SIGINT at the end."""
    root = tmp_path_factory.mktemp("e2e-server")
    secret = secrets.token_urlsafe(32)
    process = ServerProcess(
        data_dir=root / "data",
        jwt_secret=secret,
        log_path=root / "server.log",
        env=_extra_server_env(),
    )
    process.start()
    try:
        yield LiveServer(
            url=process.url,
            ws_url=process.url.replace("http://", "ws://") + "/graphql",
            jwt_secret=secret,
            process=process,
        )
    finally:
        code = process.stop()
    # A server that crashes on shutdown is a bug worth a failure, with its log to explain it.
    assert code in (0, -2, 130), f"server exited with {code}\n{process.log_tail()}"


@pytest.fixture
def staff_token(server: LiveServer) -> str:
    """A staff member's token."""
    return server.token(sub="staff-1", role="staff")


@pytest.fixture
def token_for(server: LiveServer) -> Callable[..., str]:
    """Make tokens: `token_for(sub=..., role=...)`."""
    return server.token


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """A keep-alive HTTP client for the test, closed at its end."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0, trust_env=False) as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient, staff_token: str) -> GraphQLClient:
    """A GraphQL client acting as staff."""
    return GraphQLClient(http, staff_token)


@pytest.fixture
def orders(gql: GraphQLClient) -> Orders:
    """The contract's mutations and event-log queries, as staff."""
    return Orders(gql)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the server's log tail to a failing test's report, to explain what it saw."""
    report = yield
    live = getattr(item, "funcargs", {}).get("server")
    if report.failed and isinstance(live, LiveServer):
        report.sections.append(("server log (tail)", live.process.log_tail()))
    return report
