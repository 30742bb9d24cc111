"""The `event_store.client.streams.Streams` service: appends, deletes, tombstones; reads delegate
to `reads.py`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc

from eventstore.port import ExpectedVersion, NewEvent, StreamDeleted, WrongExpectedVersion

from . import errors
from .backend import Backend
from .convert import commit_of, expected_from_options, parse_uuid, revision_of
from .reads import serve_read

logger = logging.getLogger(__name__)


def _new_event(message: Any) -> NewEvent:
    """A proposed message (Append or BatchAppend) as the port's `NewEvent`."""
    return NewEvent(
        id=parse_uuid(message.id),
        type=message.metadata.get("type", ""),
        data=message.data,
        metadata=message.custom_metadata,
        content_type=message.metadata.get("content-type", "application/octet-stream"),
    )


class StreamsService(streams_pb2_grpc.StreamsServicer):
    """Streams over the embedded store."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def Read(self, request: Any, context: Any) -> AsyncIterator[Any]:
        """Reads and catch-up subscriptions."""
        async for response in serve_read(self._backend, request, context):
            yield response

    async def Append(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
        """Client-streaming append: options first, then one proposed message per event."""
        options = None
        events: list[NewEvent] = []
        async for request in request_iterator:
            if request.WhichOneof("content") == "options":
                options = request.options
            else:
                events.append(_new_event(request.proposed_message))
        if options is None:
            await errors.abort(context, grpc.StatusCode.INVALID_ARGUMENT, "Options are required.")
        stream = options.stream_identifier.stream_name.decode("utf8")
        expected = expected_from_options(options)
        try:
            version, position = await self._backend.append(stream, events, expected)
        except WrongExpectedVersion as conflict:
            return errors.append_wrong_version(expected, conflict.actual)
        except StreamDeleted:
            await errors.abort(
                context, grpc.StatusCode.FAILED_PRECONDITION, errors.stream_deleted_message(stream)
            )
        success = streams_pb2.AppendResp.Success()
        _fill_success(success, version, position)
        return streams_pb2.AppendResp(success=success)

    async def BatchAppend(
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        """Bidirectional batches, one response per `is_final` request.

        The asyncio client cancels the call after the first response; the generator is then closed
        by grpc and the append it answered has already been committed.
        """
        pending: dict[str, tuple[Any, list[NewEvent]]] = {}
        async for request in request_iterator:
            correlation = request.correlation_id.string
            options, events = pending.get(correlation, (None, []))
            if request.HasField("options"):
                options = request.options
            events.extend(_new_event(message) for message in request.proposed_messages)
            if not request.is_final:
                pending[correlation] = (options, events)
                continue
            pending.pop(correlation, None)
            yield await self._batch(request.correlation_id, options, events)

    async def _batch(self, correlation_id: Any, options: Any, events: list[NewEvent]) -> Any:
        response = streams_pb2.BatchAppendResp()
        response.correlation_id.CopyFrom(correlation_id)
        if options is None:
            response.error.CopyFrom(errors.batch_bad_request("Options are required."))
            return response
        stream = options.stream_identifier.stream_name.decode("utf8")
        response.stream_identifier.CopyFrom(options.stream_identifier)
        expected = expected_from_options(options, "stream_position", "expected_stream_position")
        _echo_expected(response, options)
        try:
            version, position = await self._backend.append(stream, events, expected)
        except WrongExpectedVersion as conflict:
            response.error.CopyFrom(errors.batch_wrong_version(expected, conflict.actual))
            return response
        except StreamDeleted:
            response.error.CopyFrom(errors.batch_stream_deleted(stream))
            return response
        _fill_success(response.success, version, position)
        return response

    async def Delete(self, request: Any, context: Any) -> Any:
        """Soft delete: `$tb` metadata; a later append resumes the numbering."""
        stream, expected = _target(request.options)
        position = await self._delete(stream, expected, context, hard=False)
        response = streams_pb2.DeleteResp()
        response.position.commit_position = position
        response.position.prepare_position = position
        return response

    async def Tombstone(self, request: Any, context: Any) -> Any:
        """Hard delete: the stream can never be read or written again."""
        stream, expected = _target(request.options)
        position = await self._delete(stream, expected, context, hard=True)
        response = streams_pb2.TombstoneResp()
        response.position.commit_position = position
        response.position.prepare_position = position
        return response

    async def _delete(
        self, stream: str, expected: ExpectedVersion, context: Any, *, hard: bool
    ) -> int:
        try:
            if hard:
                await self._backend.store.tombstone_stream(stream, expected)
            else:
                await self._backend.soft_delete(stream, expected)
        except WrongExpectedVersion as conflict:
            await errors.abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                errors.delete_conflict_message(stream, expected, conflict.actual),
            )
        except StreamDeleted:
            await errors.abort(
                context, grpc.StatusCode.FAILED_PRECONDITION, errors.stream_deleted_message(stream)
            )
        return commit_of(await self._backend.head_position())


def _target(options: Any) -> tuple[str, ExpectedVersion]:
    return options.stream_identifier.stream_name.decode("utf8"), expected_from_options(options)


def _fill_success(success: Any, version: int, position: int) -> None:
    if version == 0:
        success.no_stream.CopyFrom(success.no_stream.__class__())
    else:
        success.current_revision = revision_of(version)
    success.position.commit_position = commit_of(position)
    success.position.prepare_position = commit_of(position)


def _echo_expected(response: Any, options: Any) -> None:
    kind = options.WhichOneof("expected_stream_position")
    if kind == "stream_position":
        response.stream_position = options.stream_position
    elif kind == "no_stream":
        response.no_stream.SetInParent()
    elif kind == "stream_exists":
        response.stream_exists.SetInParent()
    else:
        response.any.SetInParent()


__all__ = ["StreamsService", "shared_pb2"]
