"""Malformed websocket frames, generated, on both GraphQL websocket protocols against the real
server: each closes its connection with 4400 (graphql-transport-ws's "invalid message"), or, for a
well-formed frame whose operation is bad, gets a clear error for that operation; the server logs
no traceback and stays quiet, and keeps serving.

The frames come from a seeded generator (`WS_FRAMES_SEED`, `WS_FRAMES_EXAMPLES` to run more):
every way a client message can break its protocol's shape (not text, not JSON, not an object, no
or a wrong type, ids, payloads, queries, variables, operation names and extensions of the wrong
JSON type, nesting hundreds deep), and random mutations of a valid operation message.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.e2e.ws import Protocol, graphql_ws
from tests.security.live import LogWatch
from tests.support.live_server import LiveServer, running_server

PROTOCOLS: list[Protocol] = ["graphql-transport-ws", "graphql-ws"]
SEED = int(os.environ.get("WS_FRAMES_SEED", "20261207"))
EXAMPLES = int(os.environ.get("WS_FRAMES_EXAMPLES", "120"))
"""Generated frames per protocol."""
CONCURRENCY = 8
ANSWER_WITHIN = 10.0
"""Seconds a frame's close or error may take (generous: the machine is shared)."""
PROTOCOL_ERROR = 4400

Frame = str | bytes


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The service with its default limits and log level."""
    with running_server(tmp_path_factory.mktemp("ws-frames")) as live:
        yield live


def _start(protocol: Protocol) -> str:
    return "subscribe" if protocol == "graphql-transport-ws" else "start"


def _stop(protocol: Protocol) -> str:
    return "complete" if protocol == "graphql-transport-ws" else "stop"


def _nested(depth: int, leaf: object = "x", kind: str = "list") -> object:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def _json_value(rng: random.Random, depth: int = 0) -> object:
    """Any JSON value (the wrong type for a field, most of the time)."""
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.randint(-(2**63), 2**63 - 1)
    if choice == 3:
        return rng.uniform(-1e300, 1e300)
    if choice == 4:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(0, 40)))
    if choice == 5:
        return ""
    if choice == 6:
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    if choice == 7:
        return {f"k{i}": _json_value(rng, depth + 1) for i in range(rng.randrange(0, 4))}
    return _nested(rng.randrange(65, 240), kind=rng.choice(["list", "object"]))


def _not(rng: random.Random, *allowed: type) -> object:
    """A JSON value of none of the `allowed` types (None counts as a type here)."""
    while True:
        value = _json_value(rng)
        if not isinstance(value, allowed) and not (value is None and type(None) in allowed):
            return value


def _valid(protocol: Protocol) -> dict[str, object]:
    return {
        "type": _start(protocol),
        "id": "op-1",
        "payload": {
            "query": "subscription { dashboardStats { totalOrders } }",
            "variables": {},
            "operationName": None,
            "extensions": {},
        },
    }


def _malformed(rng: random.Random, protocol: Protocol) -> Frame:
    """One frame that breaks `protocol`."""
    message = _valid(protocol)
    payload = message["payload"]
    assert isinstance(payload, dict)
    kind = rng.randrange(16)
    if kind == 0:  # not JSON
        text = orjson.dumps(message).decode()
        cut = text[: rng.randrange(0, len(text))]
        return rng.choice([cut, "{" * rng.randrange(1, 50), "not json", "\x00", "'type':1"])
    if kind == 1:  # binary, even valid JSON
        return rng.choice([orjson.dumps(message), rng.randbytes(rng.randrange(1, 64))])
    if kind == 2:  # JSON, but not an object
        return orjson.dumps(_not(rng, dict)).decode()
    if kind == 3:  # no type, or not a string
        if rng.random() < 0.3:
            del message["type"]
        else:
            message["type"] = _not(rng, str)
    elif kind == 4:  # a type the client may not send
        other = ["next", "data", "error", "ka", "connection_ack", "connection_error"]
        other += ["start", "stop", "connection_terminate"] if protocol != "graphql-ws" else []
        other += ["subscribe", "complete", "ping", "pong"] if protocol == "graphql-ws" else []
        message["type"] = rng.choice([*other, "", "SUBSCRIBE", "x" * rng.randrange(1, 5000)])
    elif kind == 5:  # id missing, empty or not a string
        choice = rng.randrange(3)
        if choice == 0:
            del message["id"]
        else:
            message["id"] = "" if choice == 1 else _not(rng, str)
    elif kind == 6:  # payload missing or not an object
        if rng.random() < 0.3:
            del message["payload"]
        else:
            message["payload"] = _not(rng, dict)
    elif kind == 7:  # query missing or not a string
        if rng.random() < 0.3:
            del payload["query"]
        else:
            payload["query"] = _not(rng, str)
    elif kind == 8:
        payload["variables"] = _not(rng, dict, type(None))
    elif kind == 9:
        payload["operationName"] = _not(rng, str, type(None))
    elif kind == 10:
        payload["extensions"] = _not(rng, dict, type(None))
    elif kind == 11:  # variables nested hundreds deep, past what orjson encodes: as text
        depth = rng.randrange(65, 1200)
        opening, closing = rng.choice([("[", "]"), ('{"a":', "}")])
        deep = opening * depth + '"x"' + closing * depth
        text = orjson.dumps(message).decode()
        return text.replace('"variables":{}', '"variables":{"v":' + deep + "}")
    elif kind == 12:  # a stop without a valid id
        message = {"type": _stop(protocol)}
        if rng.random() < 0.5:
            message["id"] = _not(rng, str)
    elif kind == 13:  # the payload of a message without an id, of the wrong type
        message = {"type": "connection_init" if protocol == "graphql-ws" else "ping"}
        message["payload"] = _not(rng, dict, type(None))
    elif kind == 14:  # several fields wrong at once
        message["id"] = _not(rng, str)
        payload["query"] = _not(rng, str)
        payload["variables"] = _not(rng, dict, type(None))
    else:  # a bare container nested hundreds deep
        depth = rng.randrange(65, 2000)
        return "[" * depth + "]" * depth
    return orjson.dumps(message).decode()


def _frames(protocol: Protocol) -> list[Frame]:
    rng = random.Random(f"{SEED}:{protocol}")
    fixed: list[Frame] = [
        orjson.dumps({"type": _start(protocol), "id": "1", "payload": None}).decode(),
        orjson.dumps({"type": _start(protocol), "id": "1", "payload": "query"}).decode(),
        orjson.dumps({"type": _start(protocol), "id": 1, "payload": _valid(protocol)}).decode(),
        orjson.dumps({"type": "nope"}).decode(),
        "not json",
        b"\x00\x01",
        "[" * 300 + "]" * 300,
    ]
    return fixed + [_malformed(rng, protocol) for _ in range(EXAMPLES)]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the server answered one frame."""

    close_code: int | None
    messages: list[dict[str, object]]


async def _acknowledged(ws: ClientConnection, token: str) -> None:
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
    await ws.send(orjson.dumps(init).decode())
    async with asyncio.timeout(ANSWER_WITHIN):
        while orjson.loads(await ws.recv())["type"] != "connection_ack":
            pass


async def _answer(server: LiveServer, protocol: Protocol, frame: Frame, token: str) -> Outcome:
    """Send `frame` on an acknowledged connection; what came back until the close (or an
    operation's error, for a frame the protocol accepts)."""
    messages: list[dict[str, object]] = []
    async with connect(
        server.ws_url, subprotocols=[Subprotocol(protocol)], proxy=None, open_timeout=30
    ) as ws:
        await _acknowledged(ws, token)
        await ws.send(frame)
        try:
            async with asyncio.timeout(ANSWER_WITHIN):
                while True:
                    raw = await ws.recv()
                    message = orjson.loads(raw)
                    if message.get("type") in ("ka", "ping", "pong"):
                        continue
                    messages.append(message)
                    if message.get("type") == "error":
                        return Outcome(None, messages)
        except ConnectionClosed:
            return Outcome(ws.close_code, messages)
        except TimeoutError:
            return Outcome(None, messages)


async def _answers(
    server: LiveServer, protocol: Protocol, frames: list[Frame]
) -> list[tuple[Frame, Outcome]]:
    token = server.token(sub="staff-frames", role="staff")
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(frame: Frame) -> tuple[Frame, Outcome]:
        async with gate:
            return frame, await _answer(server, protocol, frame, token)

    return await asyncio.gather(*(one(frame) for frame in frames))


def _shown(frame: Frame) -> str:
    text = repr(frame)
    return text if len(text) < 200 else text[:200] + "..."


def _assert_quiet_log(log: str, frames: int) -> None:
    assert "Traceback" not in log, log[-4000:]
    assert "Exception in ASGI application" not in log, log[-4000:]
    lines = log.splitlines()
    assert len(lines) <= 5, f"{len(lines)} log lines for {frames} frames:\n" + "\n".join(lines[:40])


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_every_malformed_frame_closes_the_socket_with_4400_and_logs_no_traceback(
    server: LiveServer, protocol: Protocol
) -> None:
    log = LogWatch(server)
    frames = _frames(protocol)
    outcomes = await _answers(server, protocol, frames)
    wrong = [
        f"{_shown(frame)} -> close {outcome.close_code}, messages {outcome.messages}"
        for frame, outcome in outcomes
        if outcome.close_code != PROTOCOL_ERROR or outcome.messages
    ]
    assert not wrong, f"{len(wrong)} of {len(frames)} frames not closed with 4400:\n" + "\n".join(
        wrong[:20]
    )
    await asyncio.sleep(0.5)  # let any late log line land
    _assert_quiet_log(log.text(), len(frames))
    # The server still serves a well-formed subscription on the same protocol.
    token = server.token(sub="staff-frames", role="staff")
    async with graphql_ws(server.ws_url, token, protocol) as ws:
        stats = await ws.subscribe("subscription { dashboardStats { totalOrders } }")
        assert (await stats.event("dashboardStats"))["totalOrders"] >= 0


ORDER_UPDATED = "subscription($id: ID!) { orderUpdated(id: $id) { id } }"
ORDERS_UPDATED = "subscription($s: OrderStatus) { ordersUpdated(status: $s) { id } }"
STATS = "subscription { dashboardStats { totalOrders } }"

BAD_OPERATIONS: dict[str, Callable[[], dict[str, object]]] = {
    "syntax": lambda: {"query": "subscription {"},
    "unknown field": lambda: {"query": "subscription { nope }"},
    "wrong variable type": lambda: {"query": ORDER_UPDATED, "variables": {"id": {"a": "b"}}},
    "missing variable": lambda: {"query": ORDER_UPDATED, "variables": {}},
    "variable nested 60 deep": lambda: {"query": ORDER_UPDATED, "variables": {"id": _nested(60)}},
    "shared, variable nested 60 deep": lambda: {
        "query": ORDERS_UPDATED,
        "variables": {"s": _nested(60)},
    },
    "unknown operation name": lambda: {"query": STATS, "operationName": "B"},
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", list(BAD_OPERATIONS))
async def test_a_well_formed_frame_with_a_bad_operation_gets_a_clear_answer(
    server: LiveServer, protocol: Protocol, name: str
) -> None:
    log = LogWatch(server)
    payload = BAD_OPERATIONS[name]()
    frame = orjson.dumps({"type": _start(protocol), "id": "op", "payload": payload}).decode()
    token = server.token(sub="staff-frames", role="staff")
    outcome = await _answer(server, protocol, frame, token)
    if outcome.close_code is not None:  # graphql-transport-ws closes on a document that fails
        assert outcome.close_code == PROTOCOL_ERROR, outcome  # to parse or name its operation
    else:
        (error,) = outcome.messages
        assert error["type"] == "error", error
        assert error["id"] == "op", error
        errors = error["payload"] if isinstance(error["payload"], list) else [error["payload"]]
        assert errors, error
        assert all(isinstance(e, dict) and e.get("message") for e in errors), error
    await asyncio.sleep(0.3)
    _assert_quiet_log(log.text(), 1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_variable_nested_60_deep_is_refused_by_name_on_a_shared_field(
    server: LiveServer, protocol: Protocol
) -> None:
    """Deeper than MAX_VARIABLES_DEPTH (16), used or not: a clear error for the operation, and
    the socket still serves."""
    token = server.token(sub="staff-frames", role="staff")
    async with graphql_ws(server.ws_url, token, protocol) as ws:
        refused = await (await ws.subscribe(STATS, {"pad": _nested(60, kind="object")})).message()
        errors = refused.payload if refused.kind == "error" else refused.payload["errors"]
        errors = errors if isinstance(errors, list) else [errors]
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
        stats = await ws.subscribe(STATS)
        assert (await stats.event("dashboardStats"))["totalOrders"] >= 0
