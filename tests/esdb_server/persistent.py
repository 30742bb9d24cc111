"""The `event_store.client.persistent_subscriptions.PersistentSubscriptions` service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from esdbclient.protos.Grpc import persistent_pb2, persistent_pb2_grpc, shared_pb2

from eventstore.port import ANY, NewEvent, StreamDeleted, WrongExpectedVersion

from . import errors
from .backend import Backend
from .convert import commit_of, fill_recorded, parse_uuid
from .group_config import (
    CONFIG_EVENT_TYPE,
    CONFIG_STREAM,
    GroupSettings,
    InvalidSettings,
    checkpoint_text,
    config_document,
    parse_config,
    settings_from_request,
)
from .groups import Consumer, Delivery, Drop, Group, MaxConsumersReached

logger = logging.getLogger(__name__)

_NACK_ACTIONS = {0: "unknown", 1: "park", 2: "retry", 3: "skip", 4: "stop"}
_END = Drop(code="", message="")  # the client closed its side: end normally


def _source_of(options: Any) -> str | None:
    """`stream_identifier` or `all` of Delete/GetInfo/Read/ReplayParked options."""
    if options.WhichOneof("stream_option") == "all":
        return None
    return str(options.stream_identifier.stream_name.decode("utf8"))


class PersistentService(persistent_pb2_grpc.PersistentSubscriptionsServicer):
    """Groups kept in memory and in `$persistentSubscriptionConfig`, run by `groups.Group`."""

    def __init__(self, backend: Backend, *, timeout_tick: float) -> None:
        self._backend = backend
        self._tick = timeout_tick
        self._groups: dict[tuple[str | None, str], Group] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Loads and starts the groups saved in the store."""
        last = await self._backend.last_event(CONFIG_STREAM)
        if last is None or last.type != CONFIG_EVENT_TYPE:
            return
        for settings in parse_config(last.data):
            group = Group(self._backend, settings, timeout_tick=self._tick)
            await group.start()
            self._groups[(settings.stream, settings.group)] = group

    async def stop(self) -> None:
        """Stops every group (connected consumers' calls end)."""
        for group in self._groups.values():
            await group.stop()
        self._groups.clear()

    async def _save(self) -> None:
        data = config_document([group.settings for group in self._groups.values()])
        event = NewEvent(id=uuid.uuid4(), type=CONFIG_EVENT_TYPE, data=data)
        await self._backend.store.append(CONFIG_STREAM, [event], ANY)

    async def _existing(self, context: Any, stream: str | None, name: str) -> Group:
        group = self._groups.get((stream, name))
        if group is None:
            await errors.abort(
                context, grpc.StatusCode.NOT_FOUND, errors.group_not_found_message(name, stream)
            )
        return group

    # -- management ----------------------------------------------------------------------

    async def Create(self, request: Any, context: Any) -> Any:
        """Creates a group: ALREADY_EXISTS when it exists, INTERNAL for invalid settings."""
        try:
            settings = settings_from_request(request.options, update=False, previous=None)
        except InvalidSettings as problem:
            await errors.abort(context, grpc.StatusCode.INTERNAL, str(problem))
        async with self._lock:
            key = (settings.stream, settings.group)
            if key in self._groups:
                await errors.abort(
                    context,
                    grpc.StatusCode.ALREADY_EXISTS,
                    errors.group_exists_message(settings.group, settings.stream),
                )
            group = Group(self._backend, settings, timeout_tick=self._tick)
            await group.start()
            self._groups[key] = group
            await self._save()
        return persistent_pb2.CreateResp()

    async def Update(self, request: Any, context: Any) -> Any:
        """Replaces a group's settings; its consumers are dropped and it restarts."""
        options = request.options
        stream = (
            None
            if options.WhichOneof("stream_option") == "all"
            else options.stream.stream_identifier.stream_name.decode("utf8")
            or options.stream_identifier.stream_name.decode("utf8")
        )
        async with self._lock:
            old = await self._existing(context, stream, options.group_name)
            try:
                settings = settings_from_request(options, update=True, previous=old.settings)
            except InvalidSettings as problem:
                await errors.abort(context, grpc.StatusCode.INTERNAL, str(problem))
            await old.stop(Drop(code="CANCELLED", message="Subscription group was updated."))
            group = Group(self._backend, settings, timeout_tick=self._tick)
            await group.start()
            self._groups[(settings.stream, settings.group)] = group
            await self._save()
        return persistent_pb2.UpdateResp()

    async def Delete(self, request: Any, context: Any) -> Any:
        """Deletes a group and its checkpoint and parked streams."""
        stream = _source_of(request.options)
        name = request.options.group_name
        async with self._lock:
            group = await self._existing(context, stream, name)
            del self._groups[(stream, name)]
            await group.stop(
                Drop(
                    code="NOT_FOUND",
                    message=f"Subscription group '{name}' on stream "
                    f"'{errors.group_source(stream)}' was deleted.",
                )
            )
            await self._save()
            for extra in (group.checkpoint_stream, group.parked_stream):
                with contextlib.suppress(WrongExpectedVersion, StreamDeleted):
                    await self._backend.store.delete_stream(extra, ANY)
        return persistent_pb2.DeleteResp()

    async def GetInfo(self, request: Any, context: Any) -> Any:
        """One group's settings and statistics."""
        group = await self._existing(
            context, _source_of(request.options), request.options.group_name
        )
        return persistent_pb2.GetInfoResp(subscription_info=await self._info(group))

    async def List(self, request: Any, context: Any) -> Any:
        """Every group, or a stream's (`$all` groups under `all`); NOT_FOUND when none."""
        options = request.options
        groups = list(self._groups.values())
        if options.WhichOneof("list_option") == "list_for_stream":
            wanted = (
                _source_of(options.list_for_stream)
                if options.list_for_stream.WhichOneof("stream_option") == "all"
                else options.list_for_stream.stream.stream_name.decode("utf8")
            )
            groups = [g for g in groups if g.settings.stream == wanted]
        if not groups:
            await errors.abort(context, grpc.StatusCode.NOT_FOUND, "Subscription groups not found.")
        return persistent_pb2.ListResp(subscriptions=[await self._info(g) for g in groups])

    async def ReplayParked(self, request: Any, context: Any) -> Any:
        """Replays parked events ahead of new ones."""
        options = request.options
        group = await self._existing(context, _source_of(options), options.group_name)
        stop_at = options.stop_at if options.WhichOneof("stop_at_option") == "stop_at" else None
        await group.replay_parked(stop_at)
        return persistent_pb2.ReplayParkedResp()

    async def RestartSubsystem(self, request: Any, context: Any) -> Any:
        """Restarts every group from its checkpoint."""
        async with self._lock:
            for key, old in list(self._groups.items()):
                await old.stop()
                group = Group(self._backend, old.settings, timeout_tick=self._tick)
                await group.start()
                self._groups[key] = group
        return shared_pb2.Empty()

    async def _info(self, group: Group) -> Any:
        s: GroupSettings = group.settings
        read_buffer, live_buffer, retry_buffer = group.buffered
        parked = len(await group.parked_links())
        info = persistent_pb2.SubscriptionInfo(
            event_source=s.source,
            group_name=s.group,
            status="Live",
            average_per_second=0,
            total_items=group.total_items,
            count_since_last_measurement=0,
            last_checkpointed_event_position=(
                checkpoint_text(s, group.checkpoint) if group.checkpoint is not None else ""
            ),
            last_known_event_position=(
                checkpoint_text(s, group.last_known) if group.last_known is not None else ""
            ),
            resolve_link_tos=s.resolve_links,
            start_from=s.start_text,
            message_timeout_milliseconds=s.message_timeout_ms,
            extra_statistics=s.extra_statistics,
            max_retry_count=s.max_retry_count,
            live_buffer_size=s.live_buffer_size,
            buffer_size=s.history_buffer_size,
            read_batch_size=s.read_batch_size,
            check_point_after_milliseconds=s.checkpoint_after_ms,
            min_check_point_count=s.min_checkpoint_count,
            max_check_point_count=s.max_checkpoint_count,
            read_buffer_count=read_buffer,
            live_buffer_count=live_buffer,
            retry_buffer_count=retry_buffer,
            total_in_flight_messages=group.in_flight,
            outstanding_messages_count=group.in_flight,
            named_consumer_strategy=s.consumer_strategy,
            max_subscriber_count=s.max_subscriber_count,
            parked_message_count=parked,
        )
        for consumer in group.consumers:
            connection = info.connections.add()
            setattr(connection, "from", consumer.peer)
            connection.username = "admin"
            connection.total_items = consumer.total_items
            connection.available_slots = consumer.free
            connection.in_flight_messages = len(consumer.in_flight)
            connection.connection_name = consumer.connection_name
        return info

    # -- consuming -----------------------------------------------------------------------

    async def Read(self, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        """Options first; then events out, acks and nacks in."""
        requests = request_iterator.__aiter__()
        first = await anext(requests, None)
        if first is None or first.WhichOneof("content") != "options":
            await errors.abort(context, grpc.StatusCode.INVALID_ARGUMENT, "Options are required.")
        options = first.options
        stream = _source_of(options)
        group = await self._existing(context, stream, options.group_name)
        headers = dict(context.invocation_metadata() or ())
        try:
            consumer = group.connect(
                options.buffer_size, str(headers.get("connection-name", "")), context.peer()
            )
        except MaxConsumersReached:
            await errors.abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                errors.max_subscribers_message(options.group_name, stream),
            )
        response = persistent_pb2.ReadResp()
        response.subscription_confirmation.subscription_id = group.subscription_id
        yield response
        listener = asyncio.create_task(self._listen(requests, group, consumer))
        try:
            while True:
                item = await consumer.outbox.get()
                if isinstance(item, Drop):
                    if not item.code:
                        return
                    await errors.abort(context, getattr(grpc.StatusCode, item.code), item.message)
                assert isinstance(item, Delivery)
                yield _event_response(item)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await group.disconnect(consumer)

    async def _listen(self, requests: AsyncIterator[Any], group: Group, consumer: Consumer) -> None:
        # Acks and nacks must name the subscription: EventStoreDB 24.10 ignores the others (the
        # asyncio esdbclient 1.1.7 sends an empty id, so its acks are lost: reproduced on purpose).
        expected_id = group.subscription_id.encode("utf8")
        async for request in requests:
            kind = request.WhichOneof("content")
            if kind == "ack":
                if request.ack.id != expected_id:
                    logger.debug("event=ack_ignored id=%r", request.ack.id)
                    continue
                await group.ack(consumer, [parse_uuid(i) for i in request.ack.ids])
            elif kind == "nack":
                if request.nack.id != expected_id:
                    logger.debug("event=nack_ignored id=%r", request.nack.id)
                    continue
                action = _NACK_ACTIONS.get(request.nack.action, "unknown")
                await group.nack(consumer, [parse_uuid(i) for i in request.nack.ids], action)
        consumer.outbox.put_nowait(_END)


def _event_response(delivery: Delivery) -> Any:
    response = persistent_pb2.ReadResp()
    read_event = response.event
    fill_recorded(read_event.event, delivery.event)
    if delivery.link is not None:
        fill_recorded(read_event.link, delivery.link)
    source = delivery.link if delivery.link is not None else delivery.event
    read_event.commit_position = commit_of(source.position)
    read_event.retry_count = delivery.retry_count
    return response
