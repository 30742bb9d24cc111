"""gRPC errors as EventStoreDB 24.x sends them: status codes and the exact messages clients parse.

None of these attach a `grpc-status-details-bin` trailer: EventStoreDB's gRPC API does not for these
errors, and newer clients parse that trailer strictly.
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from esdbclient.protos.Grpc import code_pb2, shared_pb2, status_pb2, streams_pb2

from eventstore.port import NO_STREAM, ExpectedVersion

from .convert import describe_expected


async def abort(context: Any, code: grpc.StatusCode, message: str) -> NoReturn:
    """Ends the call with a status and message."""
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover


def stream_deleted_message(stream: str) -> str:
    """EventStoreDB's message for operations on a tombstoned stream."""
    return f"Event stream '{stream}' is deleted."


def delete_conflict_message(stream: str, expected: ExpectedVersion, actual: int | None) -> str:
    """Delete/Tombstone wrong-expected-version message; clients parse 'Actual version'."""
    actual_revision = -1 if actual is None else actual - 1
    return (
        f"Delete failed due to WrongExpectedVersion. Stream: {stream}, "
        f"Expected version: {describe_expected(expected)}, Actual version: {actual_revision}"
    )


def group_source(stream: str | None) -> str:
    """How EventStoreDB names a group's source in messages and ids."""
    return "$all" if stream is None else stream


def group_not_found_message(group: str, stream: str | None) -> str:
    """NOT_FOUND message for a missing persistent-subscription group."""
    return f"Subscription group '{group}' on stream '{group_source(stream)}' does not exist."


def group_exists_message(group: str, stream: str | None) -> str:
    """ALREADY_EXISTS message for creating a group twice."""
    return f"Subscription group '{group}' on stream '{group_source(stream)}' exists."


def max_subscribers_message(group: str, stream: str | None) -> str:
    """FAILED_PRECONDITION message; the client matches its prefix."""
    return (
        f"Maximum subscriptions reached for subscription group '{group}' "
        f"on stream '{group_source(stream)}.'"
    )


def append_wrong_version(expected: ExpectedVersion, actual: int | None) -> Any:
    """`AppendResp` for a conflict, with the new-style oneofs (and the 20.6 ones) set."""
    wrong = streams_pb2.AppendResp.WrongExpectedVersion()
    if actual is None:
        wrong.current_no_stream.CopyFrom(shared_pb2.Empty())
        wrong.no_stream_20_6_0.CopyFrom(shared_pb2.Empty())
    else:
        wrong.current_revision = actual - 1
        wrong.current_revision_20_6_0 = actual - 1
    if expected is NO_STREAM:
        wrong.expected_no_stream.CopyFrom(shared_pb2.Empty())
    elif isinstance(expected, int):
        wrong.expected_revision = expected - 1
        wrong.expected_revision_20_6_0 = expected - 1
    elif expected.value == "exists":
        wrong.expected_stream_exists.CopyFrom(shared_pb2.Empty())
        wrong.stream_exists_20_6_0.CopyFrom(shared_pb2.Empty())
    else:
        wrong.expected_any.CopyFrom(shared_pb2.Empty())
        wrong.any_20_6_0.CopyFrom(shared_pb2.Empty())
    return streams_pb2.AppendResp(wrong_expected_version=wrong)


def batch_wrong_version(expected: ExpectedVersion, actual: int | None) -> Any:
    """`google.rpc.Status` (ALREADY_EXISTS) packing a `WrongExpectedVersion` for BatchAppend."""
    wrong = shared_pb2.WrongExpectedVersion()
    if actual is None:
        wrong.current_no_stream.SetInParent()
    else:
        wrong.current_stream_revision = actual - 1
    if expected is NO_STREAM:
        wrong.expected_no_stream.SetInParent()
    elif isinstance(expected, int):
        wrong.expected_stream_position = expected - 1
    elif expected.value == "exists":
        wrong.expected_stream_exists.SetInParent()
    else:
        wrong.expected_any.SetInParent()
    return _status(code_pb2.ALREADY_EXISTS, "Wrong expected version.", wrong)


def batch_stream_deleted(stream: str) -> Any:
    """`google.rpc.Status` (FAILED_PRECONDITION) packing `StreamDeleted` for BatchAppend."""
    deleted = shared_pb2.StreamDeleted()
    deleted.stream_identifier.stream_name = stream.encode("utf8")
    return _status(code_pb2.FAILED_PRECONDITION, stream_deleted_message(stream), deleted)


def batch_bad_request(message: str) -> Any:
    """`google.rpc.Status` (INVALID_ARGUMENT) packing `BadRequest`."""
    return _status(code_pb2.INVALID_ARGUMENT, message, shared_pb2.BadRequest(message=message))


def _status(code: Any, message: str, detail: Any) -> Any:
    status = status_pb2.Status(code=code, message=message)
    status.details.Pack(detail)
    return status
