"""`uvicorn --factory api.wiring.app:app_from_env`: the application started by uvicorn's own command
still gets what can be installed from inside it: the grace after SIGTERM (readiness 503 while
requests are served, then the drain) and METRICS_PORT. What only `orders serve` gives (the read
deadlines and connection caps of its protocols) is in the README."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.gql import make_token
from tests.support.processes import ServerProcess, free_port

GRACE = 3.0
DRAIN_MARGIN = 15.0
QUICK_QUERY = "query Quick { projections { name } }"


def _factory_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.wiring.app:app_from_env",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


async def test_the_factory_app_drains_after_a_grace_and_serves_metrics_port(
    tmp_path: Path,
) -> None:
    secret = secrets.token_urlsafe(32)
    port, metrics_port = free_port(), free_port()
    process = ServerProcess(
        command=_factory_command(port),
        port=port,
        data_dir=tmp_path / "data",
        jwt_secret=secret,
        log_path=tmp_path / "server.log",
        env={"SHUTDOWN_GRACE": str(GRACE), "METRICS_PORT": str(metrics_port)},
    )
    process.start()
    token = make_token(secret, sub="ops", role="staff")
    try:
        assert process.pid is not None
        async with httpx.AsyncClient(base_url=process.url, trust_env=False, timeout=10) as http:
            scraped = await http.get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert scraped.status_code == 200
            names = {f.name for f in text_string_to_metric_families(scraped.text)}
            assert any(name.startswith("orders_") for name in names), sorted(names)

            os.kill(process.pid, signal.SIGTERM)
            signalled = time.monotonic()
            deadline = signalled + GRACE
            while (await http.get("/readyz")).status_code != 503:
                assert time.monotonic() < deadline, "/readyz did not say 503 within the grace"
                await asyncio.sleep(0.05)
            assert (await http.get("/readyz")).json() == {"status": "draining"}
            served = await http.post(
                "/graphql",
                json={"query": QUICK_QUERY},
                headers={"authorization": f"Bearer {token}"},
            )
            assert served.status_code == 200
            assert served.json()["data"]["projections"]
            assert (await http.get("/livez")).status_code == 200
        code = await asyncio.to_thread(process.wait, GRACE + DRAIN_MARGIN)
        stopped = time.monotonic() - signalled
    finally:
        process.stop()
    log = process.log_path.read_text()
    assert code == -signal.SIGTERM, log
    assert stopped >= GRACE, f"stopped {stopped:.1f} s after SIGTERM, before its grace"
    assert "event=draining grace_s=3.0 signal=SIGTERM" in log
    assert "event=metrics_serving" in log
    assert "Traceback" not in log
