"""Fixtures: one real server per event store per test session, HTTP and websocket clients, tokens.

The server runs exactly as a user starts it (`python -m api serve`) on a free port with a fresh
DATA_DIR; tests share it and stay independent through unique order ids. Every test runs once per
store: `[embedded]` (the SQLite default), `[esdb]` (ESDB_URL pointing at the repository's
EventStoreDB-compatible gRPC test server, started as its own subprocess) and `[postgres]`
(DATABASE_URL naming a throwaway database on the test PostgreSQL server); with REDIS_CLUSTER=1
(`.ci/run` sets it) also `[cluster]`: the embedded store with its views in a Redis Cluster of three
masters started here. With ESDB_URL in E2E_SERVER_ENV the suite runs only `[esdb]`, against that
server (a real EventStoreDB, say).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.gql import GraphQLClient, Orders
from tests.integration.redis_topologies.servers import running_redis_cluster
from tests.support.live_server import LiveServer, running_server
from tests.support.processes import EsdbTestServerProcess


def _extra_server_env() -> dict[str, str]:
    """`E2E_SERVER_ENV="K=V K2=V2"` configures the server under test (e.g. `ESDB_URL=...` to run
    the suite against EventStoreDB); unset, the server uses the embedded defaults."""
    pairs = os.environ.get("E2E_SERVER_ENV", "").split()
    bad = [pair for pair in pairs if "=" not in pair]
    if bad:
        raise pytest.UsageError(f"E2E_SERVER_ENV takes K=V pairs, got {bad}")
    return dict(pair.split("=", 1) for pair in pairs)


# An ESDB_URL given in E2E_SERVER_ENV replaces both stores: running `[embedded]` with it would test
# EventStoreDB under the wrong name, and the test server is not needed.
STORES = (
    ["esdb"]
    if "ESDB_URL" in _extra_server_env()
    else ["embedded", "esdb", "postgres"]
    + (["cluster"] if os.environ.get("REDIS_CLUSTER") == "1" else [])
)


@contextmanager
def _event_store(store: str, root: Path) -> Iterator[dict[str, str]]:
    """The environment pointing the service at `store`, with the test server running if needed."""
    if store == "embedded" or "ESDB_URL" in _extra_server_env():
        yield {}
        return
    if store == "cluster":
        with running_redis_cluster(root / "redis-cluster") as cluster:
            yield {"REDIS_URL": cluster.url}
        return
    if store == "postgres":
        import asyncio

        from tests.support.postgres_db import create_database, drop_database

        url = asyncio.run(create_database("orders_e2e"))
        try:
            yield {"DATABASE_URL": url}
        finally:
            asyncio.run(drop_database(url))
        return
    esdb = EsdbTestServerProcess(data_dir=root / "esdb-data", log_path=root / "esdb.log")
    esdb.start()
    try:
        yield {"ESDB_URL": esdb.url}
    finally:
        code = esdb.stop()
    assert code in (0, -2, 130), f"EventStoreDB test server exited with {code}\n{esdb.log_tail()}"


@pytest.fixture(scope="session", params=STORES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The real server over each event store in turn, started once per session and store, and
    stopped with SIGINT at the end."""
    store: str = request.param
    root = tmp_path_factory.mktemp(f"e2e-server-{store}")
    with (
        _event_store(store, root) as store_env,
        running_server(root, {**store_env, **_extra_server_env()}) as live,
    ):
        yield live


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
