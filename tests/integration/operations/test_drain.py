"""Health an orchestrator can act on, and a stop it can see coming: /livez answers while the
process runs, /readyz says whether it can serve, and after SIGTERM /readyz says 503 for
SHUTDOWN_GRACE seconds while requests are still served; then the requests in flight finish,
open websockets are closed with 1012 (service restart) and the process exits."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.e2e.gql import make_token
from tests.e2e.ws import graphql_ws
from tests.support.processes import ServerProcess

GRACE = 3.0
DRAIN_MARGIN = 15.0
"""Generous: the drain itself is bounded by api.http.shutdown.DRAIN_TIMEOUT (10 s)."""
SLOW_QUERY = 'query Slow { order(id: "never-placed", minVersion: 1) { id } }'
"""Waits about 2 s for a view that never comes, then answers null: a request in flight."""
QUICK_QUERY = "query Quick { projections { name } }"


@contextmanager
def _server(root: Path, grace: float) -> Iterator[tuple[ServerProcess, str]]:
    secret = secrets.token_urlsafe(32)
    process = ServerProcess(
        data_dir=root / "data",
        jwt_secret=secret,
        log_path=root / "server.log",
        env={"SHUTDOWN_GRACE": str(grace)},
    )
    process.start()
    try:
        yield process, make_token(secret, sub="ops", role="staff")
    finally:
        process.stop()


async def _query(http: httpx.AsyncClient, token: str, query: str) -> httpx.Response:
    return await http.post(
        "/graphql", json={"query": query}, headers={"authorization": f"Bearer {token}"}
    )


async def _until_status(http: httpx.AsyncClient, path: str, status: int, within: float) -> None:
    deadline = time.monotonic() + within
    while (await http.get(path)).status_code != status:
        assert time.monotonic() < deadline, f"{path} not {status} within {within} s"
        await asyncio.sleep(0.05)


async def test_sigterm_drains_after_a_grace_with_readiness_503(tmp_path: Path) -> None:
    with _server(tmp_path, GRACE) as (process, token):
        assert process.pid is not None
        ws_url = process.url.replace("http://", "ws://") + "/graphql"
        async with (
            httpx.AsyncClient(base_url=process.url, trust_env=False, timeout=10) as http,
            graphql_ws(ws_url, token) as ws,
        ):
            assert (await http.get("/livez")).status_code == 200
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
            live = await ws.subscribe("subscription Live { dashboardStats { totalOrders } }")
            await live.result()

            os.kill(process.pid, signal.SIGTERM)
            signalled = time.monotonic()
            await _until_status(http, "/readyz", 503, within=GRACE)
            assert (await http.get("/readyz")).json() == {"status": "draining"}
            # Still serving: a new request, liveness, and the open websocket.
            served = await _query(http, token, QUICK_QUERY)
            assert served.status_code == 200
            assert served.json()["data"]["projections"]
            assert (await http.get("/livez")).status_code == 200
            # A slow request sent before the grace ends is in flight when the drain starts.
            await asyncio.sleep(max(0.0, signalled + GRACE - 1.0 - time.monotonic()))
            slow = await _query(http, token, SLOW_QUERY)
            assert (slow.status_code, slow.json()) == (200, {"data": {"order": None}})

            closed = await live.message(within=GRACE + DRAIN_MARGIN)
            while closed.kind == "next":
                closed = await live.message(within=GRACE + DRAIN_MARGIN)
            assert (closed.kind, closed.payload) == ("closed", 1012)

        code = await asyncio.to_thread(process.wait, GRACE + DRAIN_MARGIN)
        stopped = time.monotonic() - signalled
    assert code == -signal.SIGTERM, process.log_tail()
    assert stopped >= GRACE, f"stopped {stopped:.1f} s after SIGTERM, before its grace"
    log = process.log_path.read_text()
    assert "event=draining grace_s=3.0 signal=SIGTERM" in log
    assert 'msg="Application shutdown complete."' in log


async def test_a_second_sigterm_ends_the_grace_at_once(tmp_path: Path) -> None:
    long_grace = 120.0
    with _server(tmp_path, long_grace) as (process, _):
        assert process.pid is not None
        async with httpx.AsyncClient(base_url=process.url, trust_env=False) as http:
            os.kill(process.pid, signal.SIGTERM)
            await _until_status(http, "/readyz", 503, within=5.0)
        os.kill(process.pid, signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, DRAIN_MARGIN)
    assert code == -signal.SIGTERM, process.log_tail()


async def test_ctrl_c_skips_the_grace(tmp_path: Path) -> None:
    with _server(tmp_path, 120.0) as (process, _):
        assert process.pid is not None
        os.kill(process.pid, signal.SIGINT)
        code = await asyncio.to_thread(process.wait, DRAIN_MARGIN)
    assert code == 0, process.log_tail()
