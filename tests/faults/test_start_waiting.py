"""Every process started while a dependency is down (PostgreSQL refusing connections or at its
connection limit, EventStoreDB not running, Redis not running) binds at once (`orders serve`),
says so in one line, answers UNAVAILABLE meanwhile, never exits or writes a traceback, and serves
once the dependency is back, without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.e2e.gql import JSON, PLACE, GraphQLClient, error_codes, item, new_id
from tests.faults.conftest import Service, running_service, until
from tests.support.postgres_db import ADMIN_URL, create_database, drop_database
from tests.support.processes import EsdbTestServerProcess, free_port, orders_process
from tests.support.redis_server import running_redis_server

ORDER = "query O($id: ID!) { order(id: $id) { id version } }"
BIND_BOUND = 15.0
"""How long a process may take to answer /livez after it was started (its imports on a loaded
machine): the dependency stays down all that time, so answering at all shows it did not wait."""


class Proxy:
    """A TCP forwarder to PostgreSQL on a port of its own, on an event loop in a thread of its
    own (the test's loop blocks while it stops a server): closed, PostgreSQL is down for whoever
    connects through it (connection refused); open, it is back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def open(self) -> None:
        async def listen() -> asyncio.Server:
            return await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

        future = asyncio.run_coroutine_threadsafe(listen(), self._loop)
        self._server = await asyncio.wrap_future(future)

    async def cut(self) -> None:
        """PostgreSQL goes away: stop listening and drop every connection through the proxy."""

        async def shut() -> None:
            if self._server is not None:
                self._server.close()
            writers, self._writers = self._writers, []
            for writer in writers:
                writer.transport.abort()

        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(shut(), self._loop))
        self._server = None

    async def close(self) -> None:
        """Stop listening and forwarding, and end the proxy's thread."""

        async def shut() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()
            for writer in self._writers:
                writer.close()

        if self._thread.is_alive():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(shut(), self._loop))
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._server = None
        self._loop.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers += [writer, up_writer]

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


def _admin_target() -> tuple[str, int]:
    rest = ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    host, _, port = rest.partition(":")
    return host, int(port or 5432)


def _url_through(url: str, port: int, user: str | None = None) -> str:
    scheme, rest = url.split("://", 1)
    credentials, location = rest.split("@", 1)
    database = location.split("/", 1)[1]
    return f"{scheme}://{user or credentials}@127.0.0.1:{port}/{database}"


@asynccontextmanager
async def _client(service: Service) -> AsyncIterator[tuple[httpx.AsyncClient, GraphQLClient]]:
    async with httpx.AsyncClient(base_url=service.url, timeout=15.0, trust_env=False) as http:
        yield http, GraphQLClient(http, service.token())


async def _binds_at_once(http: httpx.AsyncClient, service: Service) -> None:
    async def live() -> bool:
        assert service.process._process is not None
        assert service.process._process.poll() is None, service.log()
        try:
            return (await http.get("/livez")).status_code == 200
        except httpx.TransportError:
            return False

    await until(live, within=BIND_BOUND, what="/livez answers", every=0.1)
    assert (await http.get("/readyz")).status_code == 503


async def _place(gql: GraphQLClient) -> JSON:
    return await gql.execute(PLACE, {"input": {"customerId": "c-1", "items": [item()]}})


async def _serves_after(gql: GraphQLClient, http: httpx.AsyncClient) -> None:
    """Commands are accepted, the views answer and readiness says 200 (bounded)."""
    order_id = new_id("back")

    async def placed() -> bool:
        result = await gql.execute(
            PLACE, {"input": {"orderId": order_id, "customerId": "c-1", "items": [item()]}}
        )
        return not error_codes(result) or error_codes(result) == ["ALREADY_EXISTS"]

    await until(placed, within=30, what="commands are served", every=0.25)

    async def viewed() -> bool:
        result = await gql.execute(ORDER, {"id": order_id})
        return not error_codes(result) and result["data"]["order"] is not None

    await until(viewed, within=20, what="the views answer", every=0.25)

    async def ready() -> bool:
        return (await http.get("/readyz")).status_code == 200

    await until(ready, within=20, what="/readyz says 200", every=0.25)


def _assert_quiet(log: str, part: str) -> None:
    assert "Traceback" not in log, log
    starts = [line for line in log.splitlines() if f"event=outage part={part}" in line]
    assert 1 <= len(starts) <= 2, "\n".join(starts) or log


async def test_serve_with_postgresql_down_binds_answers_unavailable_and_heals(
    tmp_path: Path,
) -> None:
    url = await create_database("orders_down")
    proxy = Proxy(_admin_target())
    try:
        env = {"DATABASE_URL": _url_through(url, proxy.port)}
        with running_service(tmp_path, env=env, wait_healthy=False) as service:
            async with _client(service) as (http, gql):
                await _binds_at_once(http, service)
                result = await _place(gql)
                assert error_codes(result) == ["UNAVAILABLE"], result
                assert result["errors"][0]["extensions"]["part"] == "eventStore", result
                await asyncio.sleep(2.0)  # a few attempts to connect, still one line
                await proxy.open()
                await _serves_after(gql, http)
        _assert_quiet(service.log(), "eventStore")
    finally:
        await proxy.close()
        await drop_database(url)


async def test_serve_at_the_postgresql_connection_limit_waits_and_heals(tmp_path: Path) -> None:
    url = await create_database("orders_limit")
    role = f"orders_limited_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")
        await admin.execute(f"GRANT ALL ON SCHEMA public TO {role}")
        await admin.execute(f'GRANT ALL ON DATABASE "{url.rsplit("/", 1)[1]}" TO {role}')
        host, port = _admin_target()
        env = {"DATABASE_URL": _url_through(url, port, user=role).replace("127.0.0.1", host)}
        with running_service(tmp_path, env=env, wait_healthy=False) as service:
            async with _client(service) as (http, gql):
                await _binds_at_once(http, service)
                result = await _place(gql)
                assert error_codes(result) == ["UNAVAILABLE"], result

                async def said() -> bool:
                    return "TooManyConnections" in service.log()

                await until(said, within=10, what="the connection limit is named")
                await admin.execute(f"ALTER ROLE {role} CONNECTION LIMIT -1")
                await _serves_after(gql, http)
        _assert_quiet(service.log(), "eventStore")
    finally:
        await admin.close()
        await drop_database(url)
        cleanup = await asyncpg.connect(ADMIN_URL)
        try:
            await cleanup.execute(f"DROP ROLE IF EXISTS {role}")
        finally:
            await cleanup.close()


async def test_serve_with_eventstoredb_down_binds_answers_unavailable_and_heals(
    tmp_path: Path,
) -> None:
    esdb = EsdbTestServerProcess(data_dir=tmp_path / "esdb", log_path=tmp_path / "esdb.log")
    try:
        with running_service(tmp_path, env={"ESDB_URL": esdb.url}, wait_healthy=False) as service:
            async with _client(service) as (http, gql):
                await _binds_at_once(http, service)
                result = await _place(gql)
                assert error_codes(result) == ["UNAVAILABLE"], result
                assert result["errors"][0]["extensions"]["part"] == "eventStore", result
                await asyncio.sleep(2.0)
                esdb.start()
                await _serves_after(gql, http)
        assert "Traceback" not in service.log()
    finally:
        esdb.stop()


async def test_serve_with_redis_down_binds_at_once_answers_unavailable_and_heals(
    tmp_path: Path,
) -> None:
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    env = {"REDIS_URL": f"unix://{redis_dir / 'redis.sock'}"}
    with running_service(tmp_path, env=env, wait_healthy=False) as service:
        async with _client(service) as (http, gql):
            started = time.monotonic()
            await _binds_at_once(http, service)
            result = await gql.execute(ORDER, {"id": "o-1"})
            assert error_codes(result) == ["UNAVAILABLE"], result
            assert result["errors"][0]["extensions"]["part"] == "redis", result
            await asyncio.sleep(2.0)
            with running_redis_server(redis_dir):
                await _serves_after(gql, http)
            print(f"bound and answered within {time.monotonic() - started:.1f} s")
        assert "Traceback" not in service.log()


@pytest.mark.parametrize(
    ("command", "ready"),
    [
        (["project"], "event=projectors_started"),
        (["relay", "kafka"], "event=relay_started"),
    ],
)
async def test_a_worker_with_postgresql_down_waits_and_starts_when_it_is_back(
    tmp_path: Path, command: list[str], ready: str
) -> None:
    url = await create_database("orders_wdown")
    proxy = Proxy(_admin_target())
    try:
        redis_dir = tmp_path / "redis"
        redis_dir.mkdir()
        with running_redis_server(redis_dir) as socket_path:
            env = {
                "DATABASE_URL": _url_through(url, proxy.port),
                "REDIS_URL": f"unix://{socket_path}",
                "DATA_DIR": str(tmp_path / "data"),
                # no broker: the relay's own Kafka outage is not what this test is about
                "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            }
            log = tmp_path / "worker.log"
            with orders_process(command, env, log) as process:
                text: Callable[[], str] = lambda: log.read_text(errors="replace")  # noqa: E731

                async def waiting() -> bool:
                    assert process.poll() is None, text()
                    return "event=outage part=eventStore" in text()

                await until(waiting, within=BIND_BOUND, what="the wait is said", every=0.1)
                await asyncio.sleep(2.0)
                assert process.poll() is None, text()
                await proxy.open()

                async def started() -> bool:
                    assert process.poll() is None, text()
                    return ready in text()

                await until(started, within=20, what="the worker starts", every=0.1)
                process.send_signal(signal.SIGTERM)
                assert process.wait(20) == 0, text()
            _assert_quiet(text(), "eventStore")
            assert "event=outage_over part=eventStore" in text(), text()
    finally:
        await proxy.close()
        await drop_database(url)


async def test_a_postgresql_outage_under_load_is_one_line_not_one_per_failure(
    tmp_path: Path,
) -> None:
    url = await create_database("orders_quiet")
    proxy = Proxy(_admin_target())
    await proxy.open()
    try:
        env = {"DATABASE_URL": _url_through(url, proxy.port), "STORE_TIMEOUT": "2"}
        with running_service(tmp_path, env=env) as service:
            async with _client(service) as (http, gql):
                stop = asyncio.Event()
                outcomes = {"accepted": 0, "unavailable": 0}

                async def load() -> None:
                    while not stop.is_set():
                        codes = error_codes(await _place(gql))
                        assert codes in ([], ["UNAVAILABLE"]), codes
                        outcomes["accepted" if not codes else "unavailable"] += 1

                async def health_checks() -> None:
                    while not stop.is_set():
                        await http.get("/readyz")
                        await asyncio.sleep(0.1)

                workers = [asyncio.create_task(load()) for _ in range(8)]
                workers.append(asyncio.create_task(health_checks()))
                await asyncio.sleep(1.0)
                before = len(service.log().splitlines())
                await proxy.cut()
                await asyncio.sleep(6.0)
                await proxy.open()
                await asyncio.sleep(4.0)
                stop.set()
                await asyncio.gather(*workers)
                lines = service.log().splitlines()[before:]
        assert outcomes["unavailable"] > 20, outcomes  # the outage was met, under load
        starts = [line for line in lines if "event=outage " in line]
        print(f"{len(lines)} lines logged during the outage; {outcomes}")
        assert "Traceback" not in "\n".join(lines), "\n".join(lines)
        assert len(starts) <= 2, "\n".join(lines)
        assert len(lines) <= 20, "\n".join(lines)  # a few lines of the parts, not thousands
    finally:
        await proxy.close()
        await drop_database(url)
