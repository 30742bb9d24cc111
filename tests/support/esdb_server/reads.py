"""`Streams.Read`: stream and `$all` reads, and catch-up subscriptions over the same RPC.

Reads include their start point; subscriptions start after it. A missing stream answers the
`stream_not_found` message, a tombstoned one FAILED_PRECONDITION. Subscriptions confirm first and
send `caught_up` when they go live; filtered `$all` subscriptions send checkpoints.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import grpc
from esdbclient.protos.Grpc import streams_pb2

from eventstore.port import RecordedEvent, StreamDeleted

from . import errors
from .backend import EVERYTHING, LINK_TYPE, PAGE, Backend
from .convert import (
    commit_of,
    fill_recorded,
    first_position_at_or_after,
    last_position_at_or_before,
)
from .filters import AllFilter, compile_filter, hidden_from_all

_UNBOUNDED = 2**62  # clients send up to 2^63-1 for "no limit"


async def serve_read(backend: Backend, request: Any, context: Any) -> AsyncIterator[Any]:
    """Dispatches one `ReadReq` to the right kind of read."""
    options = request.options
    subscribe = options.WhichOneof("count_option") == "subscription"
    filter_ = None
    if options.WhichOneof("filter_option") == "filter":
        try:
            filter_ = compile_filter(options.filter)
        except re.error as problem:
            await errors.abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, f"Invalid filter: {problem}"
            )
    reader = _Reader(backend, options, context, filter_)
    if options.WhichOneof("stream_option") == "stream":
        body = reader.subscribe_stream() if subscribe else reader.read_stream()
    else:
        body = reader.subscribe_all() if subscribe else reader.read_all()
    async with contextlib.aclosing(body):
        async for response in body:
            yield response


class _Reader:
    def __init__(self, backend: Backend, options: Any, context: Any, filter_: AllFilter | None):
        self._backend = backend
        self._options = options
        self._context = context
        self._filter = filter_
        self._backwards = options.read_direction == streams_pb2.ReadReq.Options.Backwards
        count = options.count
        self._limit = None if count >= _UNBOUNDED else count

    async def _stream_deleted(self, stream: str) -> None:
        await errors.abort(
            self._context,
            grpc.StatusCode.FAILED_PRECONDITION,
            errors.stream_deleted_message(stream),
        )

    async def _event(self, event: RecordedEvent) -> Any:
        response = streams_pb2.ReadResp()
        read_event = response.event
        target = None
        if self._options.resolve_links and event.type == LINK_TYPE:
            target = await self._backend.resolve(event)
        if target is not None:
            fill_recorded(read_event.event, target)
            fill_recorded(read_event.link, event)
        else:
            fill_recorded(read_event.event, event)
        read_event.commit_position = commit_of(event.position)
        return response

    # -- plain reads ---------------------------------------------------------------------

    async def read_stream(self) -> AsyncGenerator[Any]:
        stream_options = self._options.stream
        stream = stream_options.stream_identifier.stream_name.decode("utf8")
        try:
            last = await self._backend.last_event(stream)
        except StreamDeleted:
            await self._stream_deleted(stream)
            return
        if last is None:
            response = streams_pb2.ReadResp()
            response.stream_not_found.stream_identifier.CopyFrom(stream_options.stream_identifier)
            yield response
            return
        kind = stream_options.WhichOneof("revision_option")
        if kind == "revision":
            next_version: int | None = stream_options.revision + 1
        elif kind == "end":
            next_version = None if self._backwards else last.version + 1
        else:
            next_version = 1
        remaining = self._limit
        while remaining is None or remaining > 0:
            size = PAGE if remaining is None else min(PAGE, remaining)
            if next_version is not None and next_version < 1:
                return
            try:
                page = await self._backend.read_stream(
                    stream, from_version=next_version, backwards=self._backwards, limit=size
                )
            except StreamDeleted:
                await self._stream_deleted(stream)
                return
            for event in page:
                yield await self._event(event)
            if remaining is not None:
                remaining -= len(page)
            if len(page) < size:
                return
            next_version = page[-1].version + (-1 if self._backwards else 1)

    async def read_all(self) -> AsyncGenerator[Any]:
        all_options = self._options.all
        kind = all_options.WhichOneof("all_option")
        from_position: int | None
        if kind == "position":
            commit = all_options.position.commit_position
            if self._backwards:
                # EventStoreDB reads backwards from *before* the given position.
                from_position = last_position_at_or_before(commit - 1)
                if from_position < 1:
                    return
            else:
                from_position = first_position_at_or_after(commit)
        elif kind == "end":
            if not self._backwards:
                return
            from_position = None
        else:
            if self._backwards:
                return
            from_position = None
        remaining = self._limit
        if remaining == 0:
            return
        events = self._backend.iter_all(from_position=from_position, backwards=self._backwards)
        async with contextlib.aclosing(events):
            async for event in events:
                if self._filter is not None and not self._filter.matches(event):
                    continue
                yield await self._event(event)
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return

    # -- catch-up subscriptions ----------------------------------------------------------

    @staticmethod
    def _confirmation() -> Any:
        response = streams_pb2.ReadResp()
        response.confirmation.subscription_id = str(uuid.uuid4())
        return response

    @staticmethod
    def _caught_up() -> Any:
        response = streams_pb2.ReadResp()
        response.caught_up.SetInParent()
        return response

    @staticmethod
    def _checkpoint(position: int) -> Any:
        response = streams_pb2.ReadResp()
        response.checkpoint.commit_position = commit_of(position)
        response.checkpoint.prepare_position = commit_of(position)
        return response

    async def subscribe_stream(self) -> AsyncGenerator[Any]:
        stream_options = self._options.stream
        stream = stream_options.stream_identifier.stream_name.decode("utf8")
        yield self._confirmation()
        kind = stream_options.WhichOneof("revision_option")
        after: int | None = None
        try:
            if kind == "revision":
                after = stream_options.revision + 1
            elif kind == "end":
                last = await self._backend.last_event(stream)
                after = None if last is None else last.version
            history = self._backend.iter_stream(stream, after_version=after)
            async with contextlib.aclosing(history):
                async for event in history:
                    yield await self._event(event)
                    after = event.version
            yield self._caught_up()
            live = self._backend.store.subscribe_stream(stream, after_version=after)
            async with contextlib.aclosing(live):  # type: ignore[type-var]
                async for event in live:
                    yield await self._event(event)
        except StreamDeleted:
            await self._stream_deleted(stream)

    async def subscribe_all(self) -> AsyncGenerator[Any]:
        all_options = self._options.all
        yield self._confirmation()
        kind = all_options.WhichOneof("all_option")
        after: int | None = None
        if kind == "position":
            after = last_position_at_or_before(all_options.position.commit_position)
        elif kind == "end":
            after = await self._backend.head_position()
        if after is not None and after < 1:
            after = None
        interval = self._filter.checkpoint_interval if self._filter is not None else 0
        considered = 0
        history = self._backend.iter_all(from_position=None if after is None else after + 1)
        async with contextlib.aclosing(history):
            async for event in history:
                after = event.position
                response = await self._selected(event)
                if response is not None:
                    yield response
                considered += 1
                if interval and considered >= interval:
                    considered = 0
                    yield self._checkpoint(event.position)
        if interval and after is not None:
            yield self._checkpoint(after)
        yield self._caught_up()
        live = self._backend.store.subscribe_all(after_position=after, filter=EVERYTHING)
        async with contextlib.aclosing(live):  # type: ignore[type-var]
            async for event in live:
                if hidden_from_all(event):
                    continue
                response = await self._selected(event)
                if response is not None:
                    yield response
                considered += 1
                if interval and considered >= interval:
                    considered = 0
                    yield self._checkpoint(event.position)

    async def _selected(self, event: RecordedEvent) -> Any | None:
        if self._filter is not None and not self._filter.matches(event):
            return None
        return await self._event(event)
