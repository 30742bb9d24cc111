"""The `event_store.client.persistent_subscriptions.PersistentSubscriptions` service: the shared
persistent-subscription engine (`eventstore.persistent`) served over gRPC, with its groups kept in
streams (`group_storage`) and EventStoreDB's settings, statistics, errors and drop codes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
from esdbclient.protos.Grpc import persistent_pb2, persistent_pb2_grpc, shared_pb2

from eventstore.persistent.consumer import Consumer
from eventstore.persistent.groups import GroupDeleted, PersistentGroups
from eventstore.port import (
    MaxSubscribersReached,
    NackAction,
    RecordedEvent,
    SubscriptionDropped,
    SubscriptionGroupExists,
    SubscriptionGroupNotFound,
    SubscriptionInfo,
)

from . import errors
from .backend import Backend
from .convert import commit_of, fill_recorded, parse_uuid
from .group_config import GroupSettings, InvalidSettings, checkpoint_text, settings_from_request
from .group_storage import StreamGroupStorage, engine_settings, stream_feed, subscription_id

logger = logging.getLogger(__name__)

# NackReq.Action: Unknown is retried, as EventStoreDB retries it.
_NACK_ACTIONS = {
    0: NackAction.RETRY,
    1: NackAction.PARK,
    2: NackAction.RETRY,
    3: NackAction.SKIP,
    4: NackAction.STOP,
}


def _source_of(options: Any) -> str | None:
    """`stream_identifier` or `all` of Delete/GetInfo/Read/ReplayParked options."""
    if options.WhichOneof("stream_option") == "all":
        return None
    return str(options.stream_identifier.stream_name.decode("utf8"))


class PersistentService(persistent_pb2_grpc.PersistentSubscriptionsServicer):
    """Groups run by the shared engine over the store of `backend`."""

    def __init__(self, backend: Backend) -> None:
        self._storage = StreamGroupStorage(backend)
        self._groups = PersistentGroups(
            backend.store, self._storage, feed=stream_feed(backend, self._storage)
        )
        self._lock = asyncio.Lock()  # one Create/Update/Delete at a time, as the config is one
        self._connections: dict[Consumer, tuple[str, str]] = {}  # (connection name, peer)

    async def start(self) -> None:
        """Loads the groups saved in the store (each runs once a consumer connects)."""
        await self._groups.start()

    async def stop(self) -> None:
        """Stops every group (connected consumers' calls end) and stores what is queued."""
        await self._groups.close()

    async def _settings(self, context: Any, stream: str | None, name: str) -> GroupSettings:
        settings = self._storage.settings(name, stream)
        if settings is None:
            await _not_found(context, name, stream)
        return settings

    # -- management ----------------------------------------------------------------------

    async def Create(self, request: Any, context: Any) -> Any:
        """Creates a group: ALREADY_EXISTS when it exists, INTERNAL for invalid settings."""
        try:
            settings = settings_from_request(request.options, update=False, previous=None)
        except InvalidSettings as problem:
            await errors.abort(context, grpc.StatusCode.INTERNAL, str(problem))
        async with self._lock:
            with self._storage.describing(settings):
                try:
                    await self._groups.create_subscription(
                        settings.group, stream=settings.stream, settings=engine_settings(settings)
                    )
                except SubscriptionGroupExists:
                    await errors.abort(
                        context,
                        grpc.StatusCode.ALREADY_EXISTS,
                        errors.group_exists_message(settings.group, settings.stream),
                    )
        return persistent_pb2.CreateResp()

    async def Update(self, request: Any, context: Any) -> Any:
        """Replaces a group's settings; its consumers are dropped (CANCELLED) and reconnect."""
        options = request.options
        stream = (
            None
            if options.WhichOneof("stream_option") == "all"
            else options.stream.stream_identifier.stream_name.decode("utf8")
            or options.stream_identifier.stream_name.decode("utf8")
        )
        async with self._lock:
            old = await self._settings(context, stream, options.group_name)
            try:
                settings = settings_from_request(options, update=True, previous=old)
            except InvalidSettings as problem:
                await errors.abort(context, grpc.StatusCode.INTERNAL, str(problem))
            with self._storage.describing(settings):
                await self._groups.update_subscription(
                    settings.group, stream=stream, settings=engine_settings(settings)
                )
        return persistent_pb2.UpdateResp()

    async def Delete(self, request: Any, context: Any) -> Any:
        """Deletes a group and its checkpoint and parked streams; its consumers get NOT_FOUND."""
        stream = _source_of(request.options)
        name = request.options.group_name
        async with self._lock:
            try:
                await self._groups.delete_subscription(name, stream=stream)
            except SubscriptionGroupNotFound:
                await _not_found(context, name, stream)
        return persistent_pb2.DeleteResp()

    async def GetInfo(self, request: Any, context: Any) -> Any:
        """One group's settings and statistics."""
        stream = _source_of(request.options)
        name = request.options.group_name
        try:
            info = await self._groups.get_subscription_info(name, stream=stream)
        except SubscriptionGroupNotFound:
            await _not_found(context, name, stream)
        return persistent_pb2.GetInfoResp(subscription_info=self._info(info))

    async def List(self, request: Any, context: Any) -> Any:
        """Every group, or a stream's (`$all` groups under `all`); NOT_FOUND when none."""
        options = request.options
        infos = await self._groups.list_subscriptions()
        if options.WhichOneof("list_option") == "list_for_stream":
            wanted = (
                _source_of(options.list_for_stream)
                if options.list_for_stream.WhichOneof("stream_option") == "all"
                else options.list_for_stream.stream.stream_name.decode("utf8")
            )
            infos = [info for info in infos if info.stream == wanted]
        if not infos:
            await errors.abort(context, grpc.StatusCode.NOT_FOUND, "Subscription groups not found.")
        return persistent_pb2.ListResp(subscriptions=[self._info(info) for info in infos])

    async def ReplayParked(self, request: Any, context: Any) -> Any:
        """Replays every parked event ahead of new ones."""
        options = request.options
        stream = _source_of(options)
        if options.WhichOneof("stop_at_option") == "stop_at":
            await errors.abort(
                context, grpc.StatusCode.UNIMPLEMENTED, "stop_at is not supported by this server."
            )
        try:
            await self._groups.replay_parked(options.group_name, stream=stream)
        except SubscriptionGroupNotFound:
            await _not_found(context, options.group_name, stream)
        return persistent_pb2.ReplayParkedResp()

    async def RestartSubsystem(self, request: Any, context: Any) -> Any:
        """Restarts every group from its checkpoint (consumers are dropped and reconnect)."""
        await self._groups.restart()
        return shared_pb2.Empty()

    def _info(self, info: SubscriptionInfo) -> Any:
        s = self._storage.settings(info.group, info.stream) or GroupSettings(
            stream=info.stream, group=info.group
        )
        runtime = self._groups.running(info.group, info.stream)
        read_buffer, live_buffer, retry_buffer = (0, 0, 0) if runtime is None else runtime.buffered
        last_known = None if runtime is None else runtime.last_known
        in_flight = 0 if runtime is None else runtime.in_flight
        message = persistent_pb2.SubscriptionInfo(
            event_source=s.source,
            group_name=s.group,
            status=info.status,
            average_per_second=0,
            total_items=0 if runtime is None else runtime.total_items,
            count_since_last_measurement=0,
            last_checkpointed_event_position=(
                checkpoint_text(s, info.checkpoint) if info.checkpoint is not None else ""
            ),
            last_known_event_position=(
                checkpoint_text(s, last_known) if last_known is not None else ""
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
            total_in_flight_messages=in_flight,
            outstanding_messages_count=in_flight,
            named_consumer_strategy=s.consumer_strategy,
            max_subscriber_count=s.max_subscriber_count,
            parked_message_count=info.parked,
        )
        for consumer in [] if runtime is None else runtime.consumers:
            name, peer = self._connections.get(consumer, ("", ""))
            connection = message.connections.add()
            setattr(connection, "from", peer)
            connection.username = "admin"
            connection.total_items = consumer.total_items
            connection.available_slots = consumer.capacity
            connection.in_flight_messages = consumer.in_flight
            connection.connection_name = name
        return message

    # -- consuming -----------------------------------------------------------------------

    async def Read(self, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        """Options first; then events out, acks and nacks in."""
        requests = request_iterator.__aiter__()
        first = await anext(requests, None)
        if first is None or first.WhichOneof("content") != "options":
            await errors.abort(context, grpc.StatusCode.INVALID_ARGUMENT, "Options are required.")
        options = first.options
        stream = _source_of(options)
        name = options.group_name
        try:
            subscription = await self._groups.read_subscription(
                name, stream=stream, buffer_size=options.buffer_size
            )
        except SubscriptionGroupNotFound:
            await _not_found(context, name, stream)
        except MaxSubscribersReached:
            await errors.abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                errors.max_subscribers_message(name, stream),
            )
        assert isinstance(subscription, Consumer)
        consumer = subscription
        headers = dict(context.invocation_metadata() or ())
        self._connections[consumer] = (str(headers.get("connection-name", "")), context.peer())
        response = persistent_pb2.ReadResp()
        response.subscription_confirmation.subscription_id = subscription_id(name, stream)
        yield response
        listener = asyncio.create_task(self._listen(requests, name, stream, consumer))
        try:
            try:
                async for event in consumer:
                    yield _event_response(event)
            except GroupDeleted:
                await errors.abort(
                    context,
                    grpc.StatusCode.NOT_FOUND,
                    f"Subscription group '{name}' on stream '{errors.group_source(stream)}' "
                    "was deleted.",
                )
            except SubscriptionDropped as dropped:
                await errors.abort(context, grpc.StatusCode.CANCELLED, str(dropped))
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await consumer.stop()
            self._connections.pop(consumer, None)

    async def _listen(
        self, requests: AsyncIterator[Any], name: str, stream: str | None, consumer: Consumer
    ) -> None:
        # Acks and nacks must name the subscription: EventStoreDB 24.10 ignores the others (the
        # asyncio esdbclient 1.1.7 sends an empty id, so its acks are lost: reproduced on purpose).
        expected_id = subscription_id(name, stream).encode("utf8")
        async for request in requests:
            kind = request.WhichOneof("content")
            if kind == "ack":
                if request.ack.id != expected_id:
                    logger.debug("event=ack_ignored id=%r", request.ack.id)
                    continue
                consumer.ack_ids([parse_uuid(i) for i in request.ack.ids])
            elif kind == "nack":
                if request.nack.id != expected_id:
                    logger.debug("event=nack_ignored id=%r", request.nack.id)
                    continue
                action = _NACK_ACTIONS.get(request.nack.action, NackAction.RETRY)
                consumer.nack_ids([parse_uuid(i) for i in request.nack.ids], action)
        await consumer.stop()  # the client closed its side: the call ends normally


async def _not_found(context: Any, group: str, stream: str | None) -> NoReturn:
    await errors.abort(
        context, grpc.StatusCode.NOT_FOUND, errors.group_not_found_message(group, stream)
    )


def _event_response(event: RecordedEvent) -> Any:
    response = persistent_pb2.ReadResp()
    read_event = response.event
    fill_recorded(read_event.event, event)
    if event.link is not None:
        fill_recorded(read_event.link, event.link)
    read_event.commit_position = commit_of((event.link or event).position)
    read_event.retry_count = event.retry_count
    return response
