"""esdbclient's asyncio client plus what the adapter needs that 1.1.7 lacks or gets wrong.

Everything here that reaches below esdbclient's public API is in this one module, so an upgrade
(to kurrentdbclient, which fixes the ack defect) has one place to look:

- `append_batch`: BatchAppend returning the stream's new revision as well as the commit position
  (esdbclient drops the revision), and a wrong-version error that carries the server's current
  revision as a number instead of inside a sentence.
- `read_persistent`: a persistent-subscription consumer whose acks and nacks carry the
  subscription id from the server's confirmation. esdbclient 1.1.7's asyncio consumer sends them
  with an empty id, which EventStoreDB 24.10 ignores, so every event would come back after the
  message timeout (kurrentdbclient issue 35; its fix is exactly this assignment).
- `subscription_info_raw` / `list_subscriptions_raw`: the wire `SubscriptionInfo`, because
  esdbclient's own dataclass leaves out the connected consumers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from esdbclient import AsyncEventStoreDBClient
from esdbclient import NewEvent as EsdbNewEvent
from esdbclient.asyncio_client import autoreconnect, retrygrpc
from esdbclient.common import AbstractAsyncPersistentSubscription, handle_rpc_error
from esdbclient.exceptions import EventStoreDBClientException, NotFound, WrongCurrentVersion
from esdbclient.persistent import AsyncPersistentSubscription
from esdbclient.protos.Grpc import persistent_pb2, shared_pb2, streams_pb2
from esdbclient.streams import BaseStreamsService, StreamState

log = logging.getLogger(__name__)

# Acks are batched by esdbclient (up to 50 ids, or after this delay). Shorter than its 0.2 s
# default so that acks reach the server well inside short message timeouts.
ACK_DELAY = 0.05
# How long a stopping consumer lets the server read its last acks before the call is cancelled.
STOPPING_GRACE = 0.2
# Bound on waiting for esdbclient's request iterator to flush: it never finishes if the call
# already ended, and a stop must not hang on that.
FLUSH_TIMEOUT = 2.0


class CurrentRevisionMismatch(WrongCurrentVersion):
    """A wrong-expected-version answer, with the stream's revision (None: it does not exist)."""

    def __init__(self, stream: str, current_revision: int | None) -> None:
        self.current_revision = current_revision
        super().__init__(f"stream {stream!r}: current revision {current_revision}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchAppended:
    """What BatchAppend answered on success."""

    revision: int | None  # the stream's revision after the append (None: no stream)
    commit_position: int


class AckingPersistentSubscription:
    """An esdbclient asyncio consumer whose acks work, and whose stop flushes them.

    Wraps (rather than subclasses) esdbclient's object because esdbclient constructs it inside
    `AsyncPersistentSubscriptionsService.read`.
    """

    def __init__(self, inner: AsyncPersistentSubscription) -> None:
        self.inner = inner
        # The one-line fix from kurrentdbclient: ack/nack requests carry this id, and acks are
        # only ever sent after the confirmation has been read (init() read it), so setting it
        # here is early enough.
        inner._read_reqs.subscription_id = inner.subscription_id.encode()
        self._stopped = False

    async def stop(self) -> None:
        """Send any batched acks and nacks, then end the call."""
        if self._stopped:
            return
        self._stopped = True
        read_reqs = self.inner._read_reqs
        try:
            # Poisons the ack queue: the request iterator sends the pending batch, waits the
            # stopping grace, then finishes.
            await asyncio.wait_for(read_reqs.stop(wait_until_stopped=True), FLUSH_TIMEOUT)
        except TimeoutError:
            log.warning("event=esdb_acks_not_flushed subscription=%s", self.inner)
        await self.inner.stop(wait_until_stopped=False)


class EsdbClient(AsyncEventStoreDBClient):
    """`AsyncEventStoreDBClient` plus the operations described in the module docstring."""

    @retrygrpc
    @autoreconnect
    async def append_batch(
        self,
        stream: str,
        *,
        current_version: int | StreamState,
        events: Sequence[EsdbNewEvent],
    ) -> BatchAppended:
        """Append atomically through BatchAppend (what esdbclient's asyncio client uses too)."""
        streams = self._connection.streams
        request = streams._construct_batch_append_req(
            stream_name=stream,
            current_version=current_version,
            events=events,
            timeout=self._default_deadline,
            correlation_id=uuid.uuid4(),
        )
        try:
            call = streams._stub.BatchAppend(
                iter([request]),
                timeout=self._default_deadline,
                metadata=streams._metadata(self._call_metadata, requires_leader=True),
                credentials=self._call_credentials,
            )
            # The server keeps the call open for further batches: take the first answer, then
            # cancel, as esdbclient does.
            async for response in call:
                call.cancel()
                return _batch_appended(response, stream, current_version)
        except grpc.RpcError as error:
            raise handle_rpc_error(error) from None
        raise EventStoreDBClientException("BatchAppend ended without a response")

    async def read_persistent(
        self, group: str, stream: str | None, *, buffer_size: int
    ) -> AckingPersistentSubscription:
        """Connect a consumer to a group (on `$all` when `stream` is None)."""
        inner: AbstractAsyncPersistentSubscription
        if stream is None:
            inner = await self.read_subscription_to_all(
                group,
                event_buffer_size=buffer_size,
                max_ack_delay=ACK_DELAY,
                stopping_grace=STOPPING_GRACE,
            )
        else:
            inner = await self.read_subscription_to_stream(
                group,
                stream,
                event_buffer_size=buffer_size,
                max_ack_delay=ACK_DELAY,
                stopping_grace=STOPPING_GRACE,
            )
        # The fix reaches into this exact class: fail loudly if a new esdbclient changes it.
        if not isinstance(inner, AsyncPersistentSubscription):
            raise TypeError(f"unexpected esdbclient consumer type {type(inner)!r}")
        return AckingPersistentSubscription(inner)

    @retrygrpc
    @autoreconnect
    async def subscription_info_raw(
        self, group: str, stream: str | None
    ) -> persistent_pb2.SubscriptionInfo:
        """GetInfo's answer as sent. Raises esdbclient's `NotFound` for a missing group."""
        service = self._connection.persistent_subscriptions
        request = service._construct_get_info_req(group, stream)
        try:
            response = await service._stub.GetInfo(
                request,
                timeout=self._default_deadline,
                metadata=service._metadata(self._call_metadata, requires_leader=True),
                credentials=self._call_credentials,
            )
        except grpc.RpcError as error:
            raise handle_rpc_error(error) from None
        info: persistent_pb2.SubscriptionInfo = response.subscription_info
        return info

    @retrygrpc
    @autoreconnect
    async def list_subscriptions_raw(
        self, stream: str | None
    ) -> list[persistent_pb2.SubscriptionInfo]:
        """List's answer as sent: every group (stream None) or those of one stream."""
        service = self._connection.persistent_subscriptions
        request = service._construct_list_req(stream)
        try:
            response = await service._stub.List(
                request,
                timeout=self._default_deadline,
                metadata=service._metadata(self._call_metadata, requires_leader=True),
                credentials=self._call_credentials,
            )
        except grpc.RpcError as error:
            translated = handle_rpc_error(error)
            if isinstance(translated, NotFound):
                return []  # EventStoreDB's answer when there are no groups at all
            raise translated from None
        return list(response.subscriptions)


def _batch_appended(
    response: streams_pb2.BatchAppendResp, stream: str, current_version: int | StreamState
) -> BatchAppended:
    if response.WhichOneof("result") == "success":
        success = response.success
        revision = (
            success.current_revision
            if success.WhichOneof("current_revision_option") == "current_revision"
            else None
        )
        return BatchAppended(revision=revision, commit_position=success.position.commit_position)
    details: Any = response.error.details
    if details.Is(shared_pb2.WrongExpectedVersion.DESCRIPTOR):
        wrong = shared_pb2.WrongExpectedVersion()
        details.Unpack(wrong)
        if wrong.WhichOneof("current_stream_revision_option") == "current_stream_revision":
            raise CurrentRevisionMismatch(stream, wrong.current_stream_revision)
        raise CurrentRevisionMismatch(stream, None)
    # Every other failure: esdbclient's own translation raises it (StreamIsDeleted, ...).
    BaseStreamsService._convert_batch_append_resp(response, stream, current_version)
    raise EventStoreDBClientException(f"BatchAppend failed: {response.error}")
