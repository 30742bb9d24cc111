"""Shared results written straight to sockets (`api.http.ws_fanout`): the frame is what the
websockets library itself would send, and a member whose socket holds a result gets every later one
in order through its task, or is dropped once too far behind."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from strawberry.types.execution import ExecutionResult
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from api.graphql.shared_subscriptions import (
    BEHIND,
    END,
    HELD,
    MEMBER_QUEUE,
    SENT,
    Member,
    SharedResult,
)
from api.http.ws_fanout import Written, text_frame


def _parse(frame: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(frame)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        parsed: Frame = done.value
        return parsed
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_frame_of_any_length_parses_as_one_final_text_frame(size: int) -> None:
    message = ("é" * size).encode()[:size]
    frame = text_frame(message)
    parsed = _parse(frame)
    assert (parsed.opcode, parsed.fin, bytes(parsed.data)) == (Opcode.TEXT, True, message)
    assert (parsed.rsv1, parsed.rsv2, parsed.rsv3) == (False, False, False)


def test_the_frame_carries_the_members_own_id_and_the_size_counts_the_message_only() -> None:
    result = ExecutionResult(data={"ordersUpdated": {"id": "o-1"}}, errors=None)
    shared = SharedResult(result)
    encode = lambda given: orjson.dumps({"data": given.data})  # noqa: E731
    for operation_id in ("1", "2", "1"):
        frame, size = shared.websocket_frame(operation_id, encode)
        payload = {"data": result.data}
        message = orjson.dumps({"id": operation_id, "type": "next", "payload": payload})
        assert bytes(_parse(frame).data) == message
        assert size == len(message)


def _result(n: int) -> SharedResult:
    return SharedResult(ExecutionResult(data={"n": n}, errors=None))


async def _drain(member: Member, into: list[int]) -> None:
    while (shared := await member.next()) is not END:
        assert shared.result.data is not None
        into.append(shared.result.data["n"])


async def test_once_a_result_is_held_later_ones_wait_behind_it_in_order() -> None:
    written: list[int] = []
    socket_full = True

    def direct(shared: SharedResult) -> Written:
        if socket_full:
            return Written.HELD
        assert shared.result.data is not None
        written.append(shared.result.data["n"])
        return Written.SENT

    member = Member(direct)
    assert member.deliver(_result(1)) == HELD
    socket_full = False  # drained: still, 2 must not overtake 1
    assert member.deliver(_result(2)) == HELD
    through_task: list[int] = []
    task = asyncio.create_task(_drain(member, through_task))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert through_task == [1, 2]
    assert member.deliver(_result(3)) == SENT  # nothing waits: straight to the socket
    member.end()
    await task
    assert (through_task, written) == ([1, 2], [3])


def test_a_member_that_falls_too_far_behind_is_dropped() -> None:
    member = Member(lambda _: Written.HELD)
    outcomes = [member.deliver(_result(n)) for n in range(MEMBER_QUEUE + 1)]
    assert outcomes[:-1] == [HELD] * MEMBER_QUEUE
    assert outcomes[-1] == BEHIND
