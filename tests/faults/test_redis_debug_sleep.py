"""Redis stalled as the issue stalled it, with `DEBUG SLEEP` (the server busy, its connections
open), rather than SIGSTOP (tests/faults/test_deadlines.py): view reads answer UNAVAILABLE naming
`redis` within REDIS_TIMEOUT plus a margin, /healthz names it, and the views answer again after."""

from __future__ import annotations

import threading
from pathlib import Path

import redis as sync_redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.e2e.gql import Orders, accepted, new_id
from tests.faults.conftest import running_service, until
from tests.faults.test_deadlines import (
    MARGIN,
    ORDER,
    REDIS_TIMEOUT,
    _answers_in_time,
    _client,
    _health_names,
    _order_seen,
)
from tests.support.redis_server import running_redis_server

SLEEP = 8
"""Seconds Redis sleeps: longer than every deadline-bounded answer below takes."""


def _debug_sleep(socket_path: Path) -> threading.Thread:
    """`DEBUG SLEEP` on a connection of its own (it blocks that client too), in a thread."""

    def sleep() -> None:
        client = sync_redis.Redis(unix_socket_path=str(socket_path), socket_timeout=SLEEP + 10)
        try:
            client.execute_command("DEBUG", "SLEEP", SLEEP)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    thread = threading.Thread(target=sleep, daemon=True)
    thread.start()
    return thread


async def _asleep(socket_path: Path) -> bool:
    """Whether Redis has stopped answering (a PING gets no answer within 0.2 s)."""
    client = sync_redis.Redis(
        unix_socket_path=str(socket_path), socket_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
        return False
    except sync_redis.TimeoutError:
        return True
    finally:
        client.close()


async def test_redis_in_debug_sleep_is_answered_within_the_redis_deadline(tmp_path: Path) -> None:
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    with running_redis_server(redis_dir) as socket_path:
        env = {"REDIS_URL": f"unix://{socket_path}", "REDIS_TIMEOUT": str(REDIS_TIMEOUT)}
        with running_service(tmp_path, env=env) as service:
            async with _client(service) as (http, gql):
                order_id = new_id("sleep")
                accepted(await Orders(gql).place(order_id))
                await until(
                    lambda: _order_seen(gql, order_id), within=10, what="the order is projected"
                )
                sleeper = _debug_sleep(socket_path)
                await until(lambda: _asleep(socket_path), within=5, what="Redis sleeps")
                slowest = await _answers_in_time(
                    gql,
                    [("order", ORDER, {"id": order_id}) for _ in range(5)],
                    part="redis",
                    bound=REDIS_TIMEOUT + MARGIN,
                )
                await _health_names(http, service, "redis")
                assert sleeper.is_alive()  # all of it answered while Redis slept
                sleeper.join(SLEEP + 10)
                await until(
                    lambda: _order_seen(gql, order_id), within=10, what="views are read again"
                )
                print(f"slowest view read while Redis slept: {slowest}")
        assert "Traceback" not in service.log()
