"""A shared result's `next` messages: the payload encoded once, each member's own id spliced in,
the same text the unshared path sends."""

from __future__ import annotations

import orjson
from strawberry.types.execution import ExecutionResult

from api.graphql.shared_subscriptions import SharedResult


def test_every_member_gets_its_own_id_and_the_payload_is_encoded_once() -> None:
    result = ExecutionResult(data={"ordersUpdated": {"id": "o-1", "total": "é 10.00"}}, errors=None)
    encoded: list[object] = []

    def encode(given: ExecutionResult) -> bytes:
        encoded.append(given)
        return orjson.dumps({"data": given.data})

    shared = SharedResult(result)
    for operation_id in ("1", "1", 'a"b\\c', "1"):
        text, size = shared.next_frame(operation_id, encode)
        expected = orjson.dumps(
            {"id": operation_id, "type": "next", "payload": {"data": result.data}}
        )
        assert text == expected.decode()
        assert size == len(expected)  # bytes, not characters: the response limit counts bytes
    assert encoded == [result]
