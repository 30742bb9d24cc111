"""The compose stack's load balancer for real: nginx started with the repository's configuration
(deploy/nginx, its upstream pointed at two local processes instead of Docker's DNS) in front of
two `orders serve --no-projectors` on one PostgreSQL database, with a projector and a shared Redis.
Requests through it land on both APIs; websocket subscriptions pass through it, and a change made
through the balancer reaches a subscriber on each API."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy.compose import REPO_ROOT
from tests.e2e.gql import PLACE, GraphQLClient, Orders, accepted, item, make_token, new_id
from tests.e2e.ws import graphql_ws
from tests.support.postgres_db import create_database, drop_database
from tests.support.processes import ServerProcess, free_port
from tests.support.redis_server import running_redis_server

NGINX = REPO_ROOT / "deploy" / "nginx"
WATCH = "subscription($c: ID) { ordersUpdated(customerId: $c) { id version } }"
# The nginx temp directories, all of them: nginx checks each at start, and the defaults of a
# distribution's build are under /var/lib/nginx, not writable to everyone.
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> str:
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    assert binary, "nginx is not installed (.ci/run installs it from apt)"
    return binary


def local_config(directory: Path, port: int, backends: list[int]) -> Path:
    """The repository's nginx.conf and server template, as compose runs them, except: the
    upstream lists the two local processes (Docker's DNS `resolve` is not here), nginx listens on
    a free loopback port, and its pid, log and temp files live in `directory`."""
    template = (NGINX / "templates" / "orders.conf.template").read_text()
    server_line = re.compile(r"^(\s*)server \$\{ORDERS_API\} resolve (.*);$", re.M)
    match = server_line.search(template)
    assert match, "the template's upstream server line changed: update this test"
    indent, parameters = match.groups()
    servers = "\n".join(f"{indent}server 127.0.0.1:{b} {parameters};" for b in backends)
    server = server_line.sub(lambda _: servers, template)
    server = re.sub(r"^resolver .*;$", "", server, flags=re.M)
    server = server.replace("listen 8000;", f"listen 127.0.0.1:{port};")
    assert "${" not in server
    (directory / "orders.conf").write_text(server)
    main = (NGINX / "nginx.conf").read_text()
    temps = "".join(f"    {name}_temp_path {directory / name};\n" for name in TEMP_PATHS)
    main = main.replace(
        "include /etc/nginx/conf.d/orders.conf;", f"include {directory / 'orders.conf'};\n{temps}"
    )
    main = main.replace("pid /tmp/nginx.pid;", f"pid {directory / 'nginx.pid'};")
    main = main.replace("error_log /dev/stderr warn;", f"error_log {directory / 'error.log'} warn;")
    assert str(directory) in main
    config = directory / "nginx.conf"
    config.write_text(main)
    return config


@pytest.fixture
def nginx_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "nginx"
    directory.mkdir()
    return directory


def start_nginx(config: Path, port: int) -> subprocess.Popen[bytes]:
    checked = subprocess.run(
        [nginx_binary(), "-t", "-c", str(config), "-g", "daemon off;"],
        capture_output=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr.decode()
    errors = config.parent / "error.log"
    process = subprocess.Popen(
        [nginx_binary(), "-c", str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, errors.read_text() if errors.exists() else "nginx exited"
        try:
            with httpx.Client(trust_env=False, timeout=2) as client:
                client.get(f"http://127.0.0.1:{port}/livez")
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.terminate()
    raise AssertionError("nginx did not answer within 10 s")


@pytest.fixture
def redis_socket(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "redis"
    directory.mkdir()
    with running_redis_server(directory) as socket_path:
        yield socket_path


def requests_logged(log: Path, transport: str) -> int:
    return len(re.findall(rf"event=request transport={transport}\b", log.read_text()))


async def through_the_balancer(url: str, secret: str) -> None:
    token = make_token(secret, sub="staff", role="staff")
    ws_url = url.replace("http://", "ws://") + "/graphql"
    # Two sockets in a row: round robin puts them on the two APIs.
    async with (
        graphql_ws(ws_url, token) as first_socket,
        graphql_ws(ws_url, token) as second_socket,
        httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as http,
    ):
        first = await first_socket.subscribe(WATCH, {"c": "c-lb"})
        second = await second_socket.subscribe(WATCH, {"c": "c-lb"})
        orders = Orders(GraphQLClient(http, token))
        for _ in range(20):
            accepted(await orders.place(new_id("lb"), customer_id="c-lb"))
        for subscription in (first, second):
            seen = {(await subscription.event("ordersUpdated", within=30))["id"] for _ in range(20)}
            assert len(seen) == 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Stack:
    """nginx in front of two APIs on one PostgreSQL database, a projector and Redis."""

    url: str
    secret: str
    apis: list[ServerProcess]
    logs: list[Path]


@pytest.fixture
def stack(tmp_path: Path, nginx_dir: Path, redis_socket: Path) -> Iterator[Stack]:
    secret = secrets.token_urlsafe(32)
    database = asyncio.run(create_database("orders_lb"))
    shared = {
        "DATABASE_URL": database,
        "REDIS_URL": f"unix://{redis_socket}",
        "LOG_LEVEL": "DEBUG",  # the request log, one line per request: which API served it
    }
    apis = [
        ServerProcess(
            command=[sys.executable, "-m", "api", "serve", "--no-projectors"],
            data_dir=tmp_path / f"api{n}",
            jwt_secret=secret,
            log_path=tmp_path / f"api{n}.log",
            env=shared,
        )
        for n in range(2)
    ]
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ESDB_URL", "DATABASE_URL", "REDIS_URL")
    }
    environment |= shared | {"LOG_LEVEL": "INFO", "DATA_DIR": str(tmp_path / "projector")}
    nginx: subprocess.Popen[bytes] | None = None
    with (tmp_path / "projector.log").open("wb") as projector_log:
        projector = subprocess.Popen(
            [sys.executable, "-m", "api", "project"],
            cwd=REPO_ROOT, env=environment, stdout=projector_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        for api in apis:
            api.start()
        port = free_port()
        nginx = start_nginx(local_config(nginx_dir, port, [api.port for api in apis]), port)
        yield Stack(
            url=f"http://127.0.0.1:{port}",
            secret=secret,
            apis=apis,
            logs=[tmp_path / f"api{n}.log" for n in range(2)],
        )
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        projector.send_signal(signal.SIGINT)
        projector.wait(20)
        for api in apis:
            api.stop()
        asyncio.run(drop_database(database))


def test_nginx_balances_http_and_websockets_over_two_apis(stack: Stack) -> None:
    asyncio.run(through_the_balancer(stack.url, stack.secret))
    served = [requests_logged(log, "http") for log in stack.logs]
    # Round robin: each API served a real share of the 20 commands.
    assert min(served) >= 5, served
    # One subscriber's socket on each API, and each got every change (a socket's operation is
    # logged once the server has seen it end).
    deadline = time.monotonic() + 10
    while not all(sockets := [requests_logged(log, "ws") for log in stack.logs]):
        assert time.monotonic() < deadline, sockets
        time.sleep(0.1)


async def commands_until(
    url: str, secret: str, stop: asyncio.Event, refused: list[str] | None = None
) -> list[str]:
    """placeOrder in a loop until `stop`: how each was answered (the result's type, else the
    HTTP status or the first error's code); the ids of those answered 502 go to `refused`."""
    token = make_token(secret, sub="staff", role="staff")
    gql = GraphQLClient(httpx.AsyncClient(base_url=url, trust_env=False, timeout=30), token)
    answers = []
    try:
        while not stop.is_set():
            order_id = new_id("d")
            response = await gql.post(
                PLACE, {"input": {"orderId": order_id, "customerId": "c", "items": [item()]}}
            )
            if response.status_code != 200:
                answers.append(f"http_{response.status_code}")
                if refused is not None and response.status_code == 502:
                    refused.append(order_id)
                continue
            body = response.json()
            errors = body.get("errors") or []
            typename = (body.get("data") or {}).get("placeOrder", {}).get("__typename", "")
            answers.append(errors[0]["extensions"]["code"] if errors else typename)
    finally:
        await gql.http.aclose()
    return answers


EVENTS_OF = "query Events($id: ID!) { orderEvents(id: $id) { type } }"


def test_a_stopping_api_loses_no_command_behind_nginx(stack: Stack) -> None:
    refused: list[str] = []

    async def scenario() -> tuple[list[str], float]:
        stop = asyncio.Event()
        loops = [
            asyncio.create_task(commands_until(stack.url, stack.secret, stop, refused))
            for _ in range(4)
        ]
        await asyncio.sleep(1.5)
        stopping = stack.apis[0]
        assert stopping.pid is not None
        os.kill(stopping.pid, signal.SIGTERM)  # what `docker compose stop` or a scale-down sends
        started = time.monotonic()
        code = await asyncio.to_thread(stopping.wait, 30)
        took = time.monotonic() - started
        assert code == -signal.SIGTERM, code
        await asyncio.sleep(1.5)  # the survivor alone
        stop.set()
        statuses = [status for loop in await asyncio.gather(*loops) for status in loop]
        return statuses, took

    async def applied(order_id: str) -> bool:
        token = make_token(stack.secret, sub="staff", role="staff")
        async with httpx.AsyncClient(base_url=stack.url, trust_env=False, timeout=30) as http:
            body = (await GraphQLClient(http, token).post(EVENTS_OF, {"id": order_id})).json()
        return bool(body["data"]["orderEvents"])

    statuses, took = asyncio.run(scenario())
    # Every command sent while one API drained and left was accepted, by one or the other, or
    # (rarely: a request nginx sent on a pooled connection just as the leaving API closed it,
    # which open-source nginx does not re-send for a POST) answered 502 without being applied:
    # no 503, no command lost, none applied behind an error.
    assert statuses, "no command was sent"
    assert set(statuses) <= {"CommandAccepted", "http_502"}, sorted(set(statuses))
    assert statuses.count("CommandAccepted") > len(statuses) // 2, statuses
    assert not [order_id for order_id in refused if asyncio.run(applied(order_id))]
    # It stopped within the compose stop_grace_period (20 s).
    assert took < 20, took
