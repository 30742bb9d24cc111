"""Health tells the truth about staleness: a projector that is lost (kill -9 of `orders
project`) makes readiness say 503 naming the views, and a read that would answer null from
views known to be behind answers UNAVAILABLE (`views`) instead; a new projector heals both. And
a Ctrl-C (SIGINT to the whole process group) stops the embedded Redis once, without a restart
by its supervisor."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx

from projections.embedded_redis import PID_FILE_NAME
from tests.e2e.gql import GraphQLClient, Orders, accepted, error_codes, make_token, new_id
from tests.faults.conftest import alive, health, until
from tests.support.postgres_db import create_database, drop_database
from tests.support.processes import REPO_ROOT, ServerProcess, free_port, orders_process
from tests.support.redis_server import running_redis_server

ORDER = "query O($id: ID!) { order(id: $id) { id version } }"
PROJECTIONS = "{ projections { name state lastError } }"


async def _order(gql: GraphQLClient, order_id: str) -> dict[str, object]:
    result: dict[str, object] = await gql.execute(ORDER, {"id": order_id})
    return result


async def test_a_lost_projector_makes_stale_reads_unavailable_and_readiness_503(
    tmp_path: Path,
) -> None:
    url = await create_database("orders_truth")
    try:
        redis_dir = tmp_path / "redis"
        redis_dir.mkdir()
        with running_redis_server(redis_dir) as socket_path:
            shared = {"DATABASE_URL": url, "REDIS_URL": f"unix://{socket_path}"}
            secret = secrets.token_urlsafe(32)
            api = ServerProcess(
                command=[sys.executable, "-m", "api", "serve", "--no-projectors"],
                data_dir=tmp_path / "api",
                jwt_secret=secret,
                log_path=tmp_path / "api.log",
                env=shared,
                ready_parts=["store", "redis"],
            )
            env = {**shared, "DATA_DIR": str(tmp_path / "project")}
            with orders_process(["project"], env, tmp_path / "project1.log") as projector:
                api.start()
                try:
                    token = make_token(secret, sub="staff-1", role="staff")
                    async with httpx.AsyncClient(
                        base_url=api.url, timeout=15.0, trust_env=False
                    ) as http:
                        gql = GraphQLClient(http, token)
                        orders = Orders(gql)
                        first = new_id("truth")
                        accepted(await orders.place(first))

                        async def projected(order_id: str) -> bool:
                            result = await _order(gql, order_id)
                            return (
                                not error_codes(result)
                                and result["data"] is not None
                                and (
                                    result["data"]["order"] is not None  # type: ignore[index]
                                )
                            )

                        await until(lambda: projected(first), within=20, what="projected")
                        assert (await health(http, token))[0] == 200

                        projector.send_signal(signal.SIGKILL)
                        projector.wait(10)
                        second = new_id("truth")
                        accepted(await orders.place(second))

                        seen: list[object] = []

                        async def views_said_behind() -> bool:
                            status, details = await health(http, token)
                            seen[:] = [details, await gql.execute(PROJECTIONS)]
                            return status == 503 and details.get("views") == "unavailable"

                        try:
                            took = await until(
                                views_said_behind, within=30, what="readiness names the views"
                            )
                        except AssertionError as error:
                            raise AssertionError(f"{error}; last seen: {seen}") from None
                        assert (await http.get("/readyz")).status_code == 503
                        stale = await _order(gql, second)
                        assert error_codes(stale) == ["UNAVAILABLE"], stale
                        assert stale["errors"][0]["extensions"]["part"] == "views", stale  # type: ignore[index]
                        print(f"lost projector reported after {took:.1f} s")

                        with orders_process(["project"], env, tmp_path / "project2.log"):
                            await until(lambda: projected(second), within=30, what="healed")

                            async def ready() -> bool:
                                return (await health(http, token))[0] == 200

                            await until(ready, within=20, what="readiness is back")
                finally:
                    api.stop()
    finally:
        await drop_database(url)


def test_ctrl_c_stops_the_embedded_redis_without_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("ESDB_URL", "REDIS_URL", "DATABASE_URL")
    }
    env.update(
        DATA_DIR=str(data_dir),
        PORT=str(port),
        JWT_SECRET=secrets.token_urlsafe(32),
        PYTHONUNBUFFERED="1",
        SHUTDOWN_GRACE="1",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        # A session of its own, as a terminal's foreground job: Ctrl-C reaches every process
        # of its group.
        process = subprocess.Popen(
            [sys.executable, "-m", "api", "serve"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log.read_text()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                        break
                except OSError:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
            redis_pid = int((data_dir / PID_FILE_NAME).read_text().split()[0])
            os.killpg(process.pid, signal.SIGINT)
            assert process.wait(20) in (0, -2, 130), log.read_text()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    text = log.read_text()
    assert "embedded_redis_died" not in text, text
    assert "embedded_redis_restarted" not in text, text
    assert "event=embedded_redis_stopped" in text, text
    assert not alive(redis_pid)
