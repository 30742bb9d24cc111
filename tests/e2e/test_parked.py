"""Parked events, end to end on each store: the orders projection parks an event it cannot apply,
an operator lists it (`orders parked list`, a subprocess) and sees it in the `projections` query
as staff (customers are refused), repairs the view and replays it (`orders parked replay`), and
the view then shows the event and nothing is parked.

The poison is real: the order's view is lost from Redis (as an eviction would lose it), so the
payment that follows can never apply (a gap before it) and is parked after the group's retries;
restoring the view is the operator's repair. Each store gets servers of its own (the shared e2e
server must keep `parked` at 0 for the other tests).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis as sync_redis

from eventstore.embedded import SQLiteEventStore
from projections.keys import NamespaceKeys, ProjectionKeys, as_text
from projections.runner import RunnerSettings
from tests.e2e.conftest import _event_store
from tests.e2e.gql import JSON, GraphQLClient, Orders, accepted, error_codes, new_id
from tests.e2e.test_read_model import eventually
from tests.support.live_server import LiveServer, running_server
from tests.support.processes import REPO_ROOT, _environment_without_external_services
from tests.support.redis_server import running_redis_server

GROUP = RunnerSettings().group
PARKED = """
query { projections { name group parked parkedEvents(first: 10) {
  id streamId type version position recordedAt reason } } }"""
ORDER_STATUS = "query($id: ID!) { order(id: $id) { status version } }"


@contextmanager
def _store_and_views(store: str, root: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """`store` (with its server, when it has one) and a Redis of this test's own for the views:
    (the environment the service and an `orders` command beside it need, the Redis socket)."""
    (root / "redis").mkdir()
    with (
        running_redis_server(root / "redis") as socket,
        _event_store(store, root) as store_env,
    ):
        env = {**store_env, "REDIS_URL": f"unix://{socket}", "DATA_DIR": str(root / "data")}
        yield env, socket


def _orders_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`orders <args>` as an operator runs it, beside the service."""
    command = [sys.executable, "-m", "api", *args]
    return subprocess.run(
        command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=90, check=False
    )


def _view_key(socket: Path, order_id: str) -> str:
    client = sync_redis.Redis(unix_socket_path=str(socket))
    try:
        namespace = client.get(ProjectionKeys().pointer)
    finally:
        client.close()
    assert namespace is not None, "the views have no namespace"
    return NamespaceKeys(as_text(namespace)).order(order_id)


async def _park_a_payment(gql: GraphQLClient, socket: Path) -> tuple[str, bytes]:
    """Place an order, lose its view, pay it: the payment is parked. (The order id, the lost
    view as Redis DUMPs it, for the repair.)"""
    orders = Orders(gql)
    order_id = new_id()
    accepted(await orders.place(order_id), version=1)

    async def placed() -> bool:
        data = await gql.data(ORDER_STATUS, {"id": order_id})
        return data["order"] is not None

    await eventually(placed)
    key = _view_key(socket, order_id)
    client = sync_redis.Redis(unix_socket_path=str(socket))
    try:
        lost = client.dump(key)
        assert isinstance(lost, bytes)
        client.delete(key)
    finally:
        client.close()
    accepted(await orders.pay(order_id), version=2)
    return order_id, lost


async def _parked_events(gql: GraphQLClient) -> list[JSON]:
    (status,) = (await gql.data(PARKED))["projections"]
    assert (status["name"], status["group"]) == ("orders", GROUP)
    events: list[JSON] = status["parkedEvents"]
    return events


def _restore(socket: Path, order_id: str, lost: bytes) -> None:
    client = sync_redis.Redis(unix_socket_path=str(socket))
    try:
        client.restore(_view_key(socket, order_id), 0, lost, replace=True)
    finally:
        client.close()


@pytest.mark.parametrize("store", ["embedded", "esdb", "postgres"])
def test_a_parked_event_is_listed_and_replayed(store: str, tmp_path: Path) -> None:
    # Not a coroutine: the PostgreSQL fixture runs its own event loop to make the database.
    with _store_and_views(store, tmp_path) as (env, socket):
        cli_env = {**_environment_without_external_services(), **env}
        with running_server(tmp_path, env) as live:
            order_id, replay = asyncio.run(_park_list_and_replay(live, cli_env, socket))
            if store != "embedded":
                assert replay.returncode == 0, replay.stderr
                assert replay.stdout == f"{GROUP}: replaying 1 parked event, ahead of new events\n"
                asyncio.run(_until_applied(live, order_id))
                return
        # The embedded store's groups run inside the serving process: it said so, and with the
        # server stopped the command replays through a projector of its own.
        assert replay.returncode == 2
        assert "inside the serving process" in replay.stderr
        replay = _orders_cli(cli_env, "parked", "replay", GROUP)
        assert replay.returncode == 0, replay.stderr
        assert replay.stdout == f"{GROUP}: replayed 1 parked event; 0 parked events now\n"
        listing = _orders_cli(cli_env, "parked", "list", GROUP)
        assert (listing.returncode, listing.stdout) == (0, f"{GROUP}: 0 parked events\n")
        with running_server(tmp_path, env) as live:
            asyncio.run(_until_applied(live, order_id))


async def _park_list_and_replay(
    live: LiveServer, cli_env: dict[str, str], socket: Path
) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Park a payment; see it as staff, the customer refused, and in `orders parked list`;
    repair the view and run `orders parked replay`: (the order id, the replay's outcome)."""
    async with httpx.AsyncClient(base_url=live.url, timeout=30.0, trust_env=False) as http:
        staff = GraphQLClient(http, live.token(sub="staff-1", role="staff"))
        order_id, lost = await _park_a_payment(staff, socket)

        async def parked() -> bool:
            return bool(await _parked_events(staff))

        await eventually(parked, within=60)
        (event,) = await _parked_events(staff)
        assert (event["streamId"], event["type"], event["version"]) == (
            f"order-{order_id}",
            "PaymentTaken",
            2,
        )
        customer = staff.with_token(live.token(sub="c-1"))
        assert error_codes(await customer.execute(PARKED)) == ["FORBIDDEN"]
    listing = await asyncio.to_thread(_orders_cli, cli_env, "parked", "list", GROUP)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["STREAM", "VERSION", "POSITION", "TYPE", "REASON"]
    assert lines[1].split()[:2] == [f"order-{order_id}", "2"]
    assert lines[1].split()[3] == "PaymentTaken"
    assert lines[-1] == f"{GROUP}: 1 parked event"
    _restore(socket, order_id, lost)  # the operator's repair
    return order_id, await asyncio.to_thread(_orders_cli, cli_env, "parked", "replay", GROUP)


async def _until_applied(live: LiveServer, order_id: str) -> None:
    """The view shows the payment, and the projection has nothing parked."""
    async with httpx.AsyncClient(base_url=live.url, timeout=30.0, trust_env=False) as http:
        staff = GraphQLClient(http, live.token(sub="staff-1", role="staff"))

        async def applied() -> bool:
            order = (await staff.data(ORDER_STATUS, {"id": order_id}))["order"]
            (status,) = (await staff.data(PARKED))["projections"]
            return (order, status["parked"], status["parkedEvents"]) == (
                {"status": "PAID", "version": 2},
                0,
                [],
            )

        await eventually(applied, within=30)


async def test_unknown_groups_and_bad_limits_are_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**_environment_without_external_services(), "DATA_DIR": str(data_dir)}
    nothing = _orders_cli(env, "parked", "list", GROUP)
    assert (nothing.returncode, nothing.stderr) == (
        2,
        f"orders parked list: no event store in {data_dir} (check DATA_DIR)\n",
    )
    store = await SQLiteEventStore.open(data_dir)  # an empty store, no group yet
    await store.close()
    unknown = _orders_cli(env, "parked", "list", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr == (
        "orders parked list: no persistent-subscription group 'nope' on $all "
        f"(this service's: {GROUP}, kafka-relay)\n"
    )
    assert _orders_cli(env, "parked", "list", GROUP, "--limit", "0").returncode == 2
    other = _orders_cli(env, "parked", "replay", "kafka-relay")
    assert other.returncode == 2
    assert "only a projection's group" in other.stderr
