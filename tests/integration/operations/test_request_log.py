"""The log of a real run, read as an operator's log shipper would: every line of `orders serve`
(uvicorn's start-up lines and its refusal of a malformed request included) parses as strict
logfmt, or as one JSON object with LOG_FORMAT=json; each GraphQL request and websocket operation
has its line with its correlation id, trace id, operation name, duration and outcome; and every
/graphql answer echoes its X-Correlation-Id, the one its events carry."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.ws import graphql_ws
from tests.support.live_server import LiveServer, running_server
from tests.support.logfmt import parse_logfmt

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
# Spaces, quotes and `=`: valid logfmt only when quoted and escaped.
AWKWARD_ID = 'ops run 7 "quoted" a=b'

Record = dict[str, object]


def _records(log: Path, log_format: str) -> list[Record]:
    """Every line of the log, parsed; any line that does not parse fails the test."""
    lines = log.read_text().splitlines()
    assert lines, "the server wrote no log"
    if log_format == "json":
        records: list[Record] = [json.loads(line) for line in lines]
    else:
        records = [dict(parse_logfmt(line)) for line in lines]
    for record in records:
        assert isinstance(record, dict)
        assert RFC3339_UTC.fullmatch(str(record["ts"])), record
        assert record["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), record
        assert record["logger"], record
        assert "event" in record or "msg" in record, record
    return records


def _requests(records: list[Record]) -> list[Record]:
    return [r for r in records if r.get("event") == "request"]


async def _exercise(server: LiveServer) -> dict[str, str]:
    """Requests of every kind; the correlation ids the server echoed, by kind."""
    staff = {"authorization": f"Bearer {server.token(sub='ops', role='staff')}"}
    echoed: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
        ok = await http.post(
            "/graphql",
            json={"query": "query Ops { projections { name } }"},
            headers={**staff, "x-correlation-id": AWKWARD_ID, "traceparent": TRACEPARENT},
        )
        assert ok.status_code == 200, ok.text
        echoed["ok"] = ok.headers["x-correlation-id"]
        bad = await http.post(
            "/graphql",
            json={"query": 'query BadCursor { events(after: "zz") { pageInfo { hasNextPage } } }'},
            headers=staff,
        )
        assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        echoed["bad"] = bad.headers["x-correlation-id"]
        refused = await http.post("/graphql", json={"query": "{ projections { name } }"})
        assert refused.status_code == 401
        echoed["refused"] = refused.headers["x-correlation-id"]
    async with graphql_ws(
        server.ws_url,
        server.token(sub="ops", role="staff"),
        headers={"x-correlation-id": "ws-7", "traceparent": TRACEPARENT},
    ) as ws:
        assert ws.ws.response is not None
        echoed["ws"] = ws.ws.response.headers["x-correlation-id"]
        live = await ws.subscribe("subscription Live { dashboardStats { totalOrders } }")
        await live.result()
        await live.stop()  # its line is written as it ends (the server sends nothing back)
    # uvicorn's own warning, free text, for a request it cannot parse.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert raw.recv(1024).startswith(b"HTTP/1.1 400")
    return echoed


def _count_requests(log: Path) -> int:
    return len(re.findall(r"event.{0,3}[=:].{0,2}request\b", log.read_text()))


async def _until_logged(log: Path, count: int, within: float = 10.0) -> None:
    """Until the log holds `count` request lines (the websocket's is written as it ends)."""
    deadline = time.monotonic() + within
    while _count_requests(log) < count:
        assert time.monotonic() < deadline, f"fewer than {count} request lines in {within} s"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
async def test_every_line_of_a_run_parses_and_each_request_has_its_line(
    tmp_path: Path, log_format: str
) -> None:
    log = tmp_path / "server.log"
    with running_server(tmp_path, {"LOG_LEVEL": "DEBUG", "LOG_FORMAT": log_format}) as server:
        echoed = await _exercise(server)
        await _until_logged(log, 4)
    records = _records(log, log_format)

    uvicorn_text = [str(r.get("msg")) for r in records if r["logger"] == "uvicorn.error"]
    assert any(text.startswith("Started server process") for text in uvicorn_text)
    assert any(text.startswith("Uvicorn running on http://127.0.0.1:") for text in uvicorn_text)
    assert any(
        r["level"] == "WARNING" and r.get("msg") == "Invalid HTTP request received."
        for r in records
    )

    requests = _requests(records)
    by_id = {r["correlation_id"]: r for r in requests if r["transport"] == "http"}
    assert echoed["ok"] == AWKWARD_ID
    ok = by_id[AWKWARD_ID]
    assert (ok["operation"], ok["outcome"], ok["status"]) == ("Ops", "ok", "200")
    assert ok["trace_id"] == TRACE_ID
    assert float(str(ok["duration_ms"])) > 0
    bad = by_id[echoed["bad"]]
    assert (bad["operation"], bad["outcome"], bad["trace_id"]) == (
        "BadCursor",
        "BAD_USER_INPUT",
        "",
    )
    refused = by_id[echoed["refused"]]
    assert (refused["outcome"], refused["status"]) == ("UNAUTHENTICATED", "401")
    uuid.UUID(echoed["refused"])  # made by the server: none was sent
    live = [r for r in requests if r["transport"] == "ws"]
    assert echoed["ws"] == "ws-7"
    assert [(r["operation"], r["outcome"], r["correlation_id"], r["trace_id"]) for r in live] == [
        ("Live", "ok", "ws-7", TRACE_ID)
    ]
    assert float(str(live[0]["duration_ms"])) > 0


async def test_request_lines_are_off_at_the_default_level(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with running_server(tmp_path) as server:
        await _exercise(server)
    records = _records(log, "logfmt")
    assert _requests(records) == []
    assert any(r.get("event") == "started" for r in records)


async def test_the_correlation_id_made_for_a_command_is_echoed_and_in_its_events(
    tmp_path: Path,
) -> None:
    place = """mutation Place($input: PlaceOrderInput!) {
      placeOrder(input: $input) { ... on CommandAccepted { orderId } }
    }"""
    items = [{"productId": "p-1", "name": "Widget", "price": "10.00", "qty": 1}]
    with running_server(tmp_path) as server:
        token = server.token(sub="c-1")
        staff = server.token(sub="ops", role="staff")
        async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
            placed = await http.post(
                "/graphql",
                json={
                    "query": place,
                    "variables": {"input": {"customerId": "c-1", "items": items}},
                },
                headers={"authorization": f"Bearer {token}"},
            )
            correlation_id = placed.headers["x-correlation-id"]
            order_id = placed.json()["data"]["placeOrder"]["orderId"]
            events = await http.post(
                "/graphql",
                json={
                    "query": "query($id: ID!) { orderEvents(id: $id) { metadata } }",
                    "variables": {"id": order_id},
                },
                headers={"authorization": f"Bearer {staff}", "x-correlation-id": "mine-1"},
            )
    assert events.headers["x-correlation-id"] == "mine-1"
    (event,) = events.json()["data"]["orderEvents"]
    assert event["metadata"]["$correlationId"] == correlation_id
    uuid.UUID(correlation_id)
