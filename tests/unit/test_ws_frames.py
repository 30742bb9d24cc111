"""The websocket frame rules (`api.graphql.ws_frames`), the shared-subscription key and the memory
reclaimer's pacing, without a server (the real-server tests are in tests/security)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from api.graphql.shared_subscriptions import SharedSubscriptions, shared_field
from api.graphql.ws_frames import MAX_DEPTH, InvalidFrame, Protocol, check_message, decode_frame
from api.http.auth import Principal, Role
from api.http.memory import MemoryReclaimer

VALID: dict[Protocol, dict[str, object]] = {
    "graphql-transport-ws": {
        "type": "subscribe",
        "id": "1",
        "payload": {"query": "subscription { dashboardStats { totalOrders } }"},
    },
    "graphql-ws": {
        "type": "start",
        "id": "1",
        "payload": {"query": "subscription { dashboardStats { totalOrders } }"},
    },
}


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_a_valid_operation_message_passes(protocol: Protocol) -> None:
    message = VALID[protocol]
    check_message(message, protocol)
    check_message({**message, "payload": {"query": "{ x }", "variables": None}}, protocol)


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"payload": None}, "payload must be an object"),
        ({"payload": []}, "payload must be an object"),
        ({"id": 1}, "id must be a non-empty string"),
        ({"id": ""}, "id must be a non-empty string"),
        ({"type": None}, "type must be a string"),
        ({"type": "next"}, "Unknown message type"),
        ({"payload": {"query": 1}}, "query must be a string"),
        ({"payload": {"query": "{ x }", "variables": [1]}}, "variables must be an object"),
        ({"payload": {"query": "{ x }", "operationName": 1}}, "name must be a string"),
        ({"payload": {"query": "{ x }", "extensions": "x"}}, "extensions must be an object"),
    ],
)
def test_an_operation_message_of_the_wrong_shape_is_refused(
    protocol: Protocol, change: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidFrame, match=reason):
        check_message({**VALID[protocol], **change}, protocol)


def test_each_protocol_refuses_the_other_protocols_operation_messages() -> None:
    with pytest.raises(InvalidFrame):
        check_message(VALID["graphql-ws"], "graphql-transport-ws")
    with pytest.raises(InvalidFrame):
        check_message(VALID["graphql-transport-ws"], "graphql-ws")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "valid JSON"),
        ("[1]", "JSON object"),
        ("null", "JSON object"),
        ('{"v":' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}", "nested deeper"),
        ("[" * 5000 + "]" * 5000, "valid JSON"),
    ],
)
def test_a_frame_that_is_not_a_json_object_within_the_depth_is_refused(
    text: str, reason: str
) -> None:
    with pytest.raises(InvalidFrame, match=reason):
        decode_frame(text)


def test_a_frame_at_the_depth_limit_is_decoded() -> None:
    inner = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert decode_frame('{"v":' + inner + "}")["v"] is not None


def test_a_shared_key_holds_a_digest_not_the_variables() -> None:
    staff = Principal(sub="s-1", role=Role.STAFF, expires_at=0)
    query = "subscription($c: ID) { ordersUpdated(customerId: $c) { id } }"
    variables: dict[str, object] = {"c": "c-1", "pad": "x" * 1_000_000}
    key = SharedSubscriptions.key(query, None, variables, staff)
    assert len(orjson.dumps([key[0].hex(), key[1]])) < 200
    reordered = {"pad": variables["pad"], "c": "c-1"}
    assert SharedSubscriptions.key(query, None, reordered, staff) == key
    assert SharedSubscriptions.key(query, None, {"c": "c-2"}, staff) != key


def test_only_subscriptions_to_one_shared_field_are_shared() -> None:
    assert shared_field("subscription { dashboardStats { totalOrders } }", None) == "dashboardStats"
    assert shared_field("subscription($id: ID!) { orderUpdated(id: $id) { id } }", None) is None
    assert shared_field("query { dashboardStats { totalOrders } }", None) is None
    many_tokens = "subscription { dashboardStats { " + "totalOrders " * 5000 + "} }"
    assert shared_field(many_tokens, None) is None


async def test_the_reclaimer_runs_once_for_a_burst_of_releases() -> None:
    reclaimer = MemoryReclaimer(quiet=0.05, min_interval=0.3)
    for _ in range(100):
        reclaimer.released()
    await asyncio.sleep(0.15)
    assert reclaimer.passes == 1
    reclaimer.released()  # within min_interval of the last pass: waits for it
    await asyncio.sleep(0.1)
    assert reclaimer.passes == 1
    await asyncio.sleep(0.3)
    assert reclaimer.passes == 2
