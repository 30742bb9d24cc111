"""The websocket side of the GraphQL view: frames checked and sent as text, answers bounded in
size, queries over the legacy protocol, and shared live queries, on top of the handshake
deadline and token expiry of `api.graphql.ws_protocols`.

Both GraphQL websocket protocols carry JSON as text. The view encodes with orjson (bytes), and
strawberry sends bytes as binary frames, which the `graphql-ws` reference client rejects
("Message is missing the 'type' property") and a browser hands over as a Blob; so messages are
decoded to text once here. A frame that breaks the protocol closes the connection with 4400
(`api.graphql.ws_frames`) before strawberry's handlers index into it. An operation's result is
encoded once; over `RequestLimits.max_response_bytes` it is replaced by a QUERY_TOO_COMPLEX error
for that operation, as HTTP replaces such a body. The legacy `graphql-ws` protocol
(subscriptions-transport-ws) also runs queries and mutations sent with `start`; strawberry only
subscribes there, so those are run like the newer protocol runs them. Both protocols take
Apollo's persisted queries (`api.graphql.persisted_queries`) in the operation's `extensions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from contextlib import aclosing, contextmanager
from typing import Any, Final, cast

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLFormattedError,
    OperationType,
    get_operation_ast,
    parse,
)
from starlette.types import Message as ASGIMessage
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from starlette.websockets import WebSocketDisconnected as StarletteWebSocketDisconnected
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema import BaseSchema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    CompleteMessage as TransportCompleteMessage,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ErrorMessage as TransportErrorMessage,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message as TransportMessage,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.types import (
    CompleteMessage,
    DataMessage,
    ErrorMessage,
    OperationMessage,
    StartMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

from api.graphql.context import AppContext
from api.graphql.extensions import INTERNAL_ERROR_CODE
from api.graphql.persisted_queries import PersistedQueries, PersistedQueryError
from api.graphql.shared_subscriptions import (
    END,
    Member,
    SharedResult,
    SharedSubscriptions,
    shared_field,
)
from api.graphql.ws_frames import (
    PROTOCOL_ERROR,
    InvalidFrame,
    Protocol,
    check_message,
    decode_frame,
)
from api.graphql.ws_protocols import LegacyWSHandler, TransportWSHandler
from api.http.limits import TOO_COMPLEX
from api.http.memory import MemoryReclaimer
from api.http.protocol import WEBSOCKET_LEASE
from api.http.ws_fanout import WEBSOCKET_PROTOCOL, FrameWriter, Written
from metrics.instruments import WS_MESSAGES_PUSHED, WS_SUBSCRIPTIONS, subscription_label


def subscribed_field(query: str, operation_name: str | None) -> str | None:
    """The root field of a subscription operation (the first one); None for anything else."""
    try:
        operation = get_operation_ast(parse(query), operation_name)
    except GraphQLError:
        return None
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
        return None
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode):
            return selection.name.value
    return None


@contextmanager
def _counted_subscription(query: str, operation_name: str | None) -> Iterator[None]:
    """Counts the operation in `orders_ws_subscriptions` while it runs, if it subscribes."""
    field = subscribed_field(query, operation_name)
    if field is None:
        yield
        return
    gauge = WS_SUBSCRIPTIONS.labels(subscription_label(field))
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


logger = logging.getLogger(__name__)

_MAX_REASON: Final = 123
"""Bytes a close frame's reason may have (RFC 6455)."""


def _too_large(limit: int) -> GraphQLFormattedError:
    """The error an operation gets instead of an answer over the response limit (HTTP's text)."""
    return {
        "message": f"The response would exceed {limit} bytes: ask for smaller pages.",
        "extensions": {"code": TOO_COMPLEX},
    }


class _ResponseTooLarge(Exception):
    """An operation's answer was replaced by `_too_large`: the operation is over."""


def _with_persisted_document(
    view: object, payload: object
) -> tuple[dict[str, object] | None, PersistedQueryError | None]:
    """An operation payload with the document its persisted-query hash names (None: leave the
    payload as it is), or the error that refuses it."""
    persisted = getattr(view, "persisted_queries", None)
    if not isinstance(persisted, PersistedQueries) or not isinstance(payload, dict):
        return None, None
    query = payload.get("query")
    try:
        document = persisted.document(
            query if isinstance(query, str) else None, payload.get("extensions")
        )
    except PersistedQueryError as error:
        return None, error
    if document is None or document == query:
        return None, None
    return {**payload, "query": document}, None


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """Reads frames that pass `api.graphql.ws_frames` (else closes with 4400) and sends text
    frames."""

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        """Each client message, decoded and checked; a frame that is not a JSON object (binary,
        not JSON, too deep) closes the connection with 4400 and ends the iteration."""
        while self.ws.application_state != WebSocketState.DISCONNECTED:
            message: ASGIMessage = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            try:
                if text is None:
                    raise InvalidFrame("WebSocket message type must be text")
                decoded = decode_frame(text)
            except InvalidFrame as invalid:
                await self.refuse_frame(invalid.reason)
                return
            yield decoded

    async def refuse_frame(self, reason: str) -> None:
        """Close the connection for a frame that breaks the protocol (4400)."""
        logger.debug("event=ws_invalid_message reason=%r", reason)
        await self.close(PROTOCOL_ERROR, reason)

    async def send_json(self, message: Mapping[str, object]) -> None:
        """The view's JSON encoding, sent as text."""
        await self.send_encoded(self.encode(message))

    def encode(self, message: Mapping[str, object]) -> bytes:
        """A message as the view encodes it."""
        encoded = self.view.encode_json(message)
        return encoded if isinstance(encoded, bytes) else encoded.encode()

    async def send_encoded(self, encoded: bytes) -> None:
        """Send an encoded message as one text frame."""
        await self.send_text(encoded.decode())

    async def send_text(self, text: str) -> None:
        """Send one text frame; a connection already closed (by the client, or by us) raises
        strawberry's `WebSocketDisconnected`."""
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            raise WebSocketDisconnected
        try:
            await self.ws.send_text(text)
        except (WebSocketDisconnect, StarletteWebSocketDisconnected) as exc:
            raise WebSocketDisconnected from exc

    async def close(self, code: int, reason: str) -> None:
        """Close with `code`; nothing to do when the connection is closed already."""
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        try:
            await self.ws.close(
                code=code, reason=reason.encode()[:_MAX_REASON].decode(errors="ignore")
            )
        except (WebSocketDisconnect, StarletteWebSocketDisconnected):
            logger.debug("event=ws_close_after_disconnect code=%d", code)


def _adapter(handler: LegacyWSHandler | TransportWSHandler) -> TextWebSocketAdapter:
    return cast(TextWebSocketAdapter, handler.websocket)


def _response_limit(context: AppContext) -> int:
    return context.services.settings.request_limits.max_response_bytes


def _released(view: object) -> None:
    """A connection or its operations closed: the view's reclaimer frees their memory soon."""
    reclaimer = getattr(view, "reclaimer", None)
    if isinstance(reclaimer, MemoryReclaimer):
        reclaimer.released()


async def _breaks_protocol(
    handler: LegacyWSHandler | TransportWSHandler, message: object, protocol: Protocol
) -> bool:
    """Whether `message` breaks `protocol`; if so the connection is closed with 4400."""
    try:
        check_message(cast(Mapping[str, object], message), protocol)
    except InvalidFrame as invalid:
        await _adapter(handler).refuse_frame(invalid.reason)
        return True
    return False


class LegacyGraphQLWSHandler(LegacyWSHandler):
    """The legacy protocol, answering queries and mutations as well as subscriptions.

    A query or mutation gets one `data` message and then `complete`, as subscriptions-transport-ws
    servers answer them; errors before execution (syntax, validation) are one `error` message,
    and so is an answer over the response limit.
    """

    protocol: Protocol = "graphql-ws"

    async def handle(self) -> None:
        """Serve the connection; its memory is reclaimed once it closes."""
        try:
            await super().handle()
        finally:
            _released(self.view)

    async def handle_message(self, message: OperationMessage) -> None:
        """Messages that break the protocol close the connection with 4400."""
        if await _breaks_protocol(self, message, self.protocol):
            return
        await super().handle_message(message)

    async def handle_start(self, message: StartMessage) -> None:
        """A persisted query's document from the store, or its refusal as an `error` message."""
        if self.connection_acknowledged:
            payload, refused = _with_persisted_document(self.view, message.get("payload"))
            if refused is not None:
                await self.send_message(
                    ErrorMessage(type="error", id=message["id"], payload=refused.formatted)
                )
                return
            if payload is not None:
                message = cast("StartMessage", {**message, "payload": payload})
        await super().handle_start(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        """Run any operation type through strawberry's stream (one result for a query or a
        mutation, many for a subscription)."""
        with _counted_subscription(query, operation_name):
            await self._handle_async_results(operation_id, query, operation_name, variables)

    async def _handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        try:
            result_source = await self.schema.stream(
                query,
                variable_values=variables,
                context_value=self.context,
                root_value=self.root_value,
                operation_name=operation_name,
            )
            self.subscriptions[operation_id] = result_source
            is_first_result = True
            async for result in result_source:
                if is_first_result and isinstance(result, PreExecutionError):
                    assert result.errors
                    await self.send_message(
                        ErrorMessage(
                            type="error", id=operation_id, payload=result.errors[0].formatted
                        )
                    )
                    return
                if not isinstance(result, ExecutionResult):
                    # Incremental delivery (@defer/@stream) has no message in this protocol.
                    await self.send_message(
                        ErrorMessage(
                            type="error",
                            id=operation_id,
                            payload={"message": "incremental delivery is not supported here"},
                        )
                    )
                    return
                await self.send_data_message(result, operation_id)
                is_first_result = False
            await self.send_message(CompleteMessage(type="complete", id=operation_id))
        except asyncio.CancelledError:
            await self._send_quietly(CompleteMessage(type="complete", id=operation_id))
        except (_ResponseTooLarge, WebSocketDisconnected):
            return  # the operation's error is sent, or there is no one to send anything to
        except Exception:
            logger.exception("event=ws_operation_failed protocol=graphql-ws")
            masked: GraphQLFormattedError = {
                "message": "Unexpected error.",
                "extensions": {"code": INTERNAL_ERROR_CODE},
            }
            await self._send_quietly(ErrorMessage(type="error", id=operation_id, payload=masked))
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)
            _released(self.view)

    async def _send_quietly(self, message: OperationMessage) -> None:
        try:
            await self.send_message(message)
        except WebSocketDisconnected:
            logger.debug("event=ws_send_after_disconnect protocol=graphql-ws")

    async def send_data_message(self, execution_result: ExecutionResult, operation_id: str) -> None:
        """One `data` message, encoded once; over the response limit an `error` for the
        operation instead (`_ResponseTooLarge` ends the operation)."""
        payload: dict[str, object] = {"data": execution_result.data}
        if execution_result.errors:
            payload["errors"] = [error.formatted for error in execution_result.errors]
        if execution_result.extensions:
            payload["extensions"] = execution_result.extensions
        message = cast(DataMessage, {"type": "data", "id": operation_id, "payload": payload})
        adapter = _adapter(self)
        encoded = adapter.encode(message)
        limit = _response_limit(self.context)
        if len(encoded) > limit:
            _log_refused(self.protocol, len(encoded), limit)
            error = ErrorMessage(type="error", id=operation_id, payload=_too_large(limit))
            await self.send_message(error)
            raise _ResponseTooLarge
        WS_MESSAGES_PUSHED.inc()
        await adapter.send_encoded(encoded)


def _log_refused(protocol: Protocol, size: int, limit: int) -> None:
    logger.info(
        "event=response_refused transport=websocket protocol=%s bytes=%d limit=%d",
        protocol,
        size,
        limit,
    )


class SharingGraphQLTransportWSHandler(TransportWSHandler):
    """graphql-transport-ws, with the live queries of `api.graphql.shared_subscriptions` run once
    for every subscriber that asks the same (each still gets its own messages)."""

    protocol: Protocol = "graphql-transport-ws"

    async def handle_message(self, message: TransportMessage) -> None:
        """Messages that break the protocol close the connection with 4400."""
        if await _breaks_protocol(self, message, self.protocol):
            return
        await super().handle_message(message)

    async def shutdown(self) -> None:
        """Stop the connection's operations; its memory is reclaimed soon after."""
        try:
            await super().shutdown()
        finally:
            _released(self.view)

    async def handle_task_exception(self, error: Exception) -> None:
        """An operation that failed because its client left is no error of the server's."""
        if isinstance(error, WebSocketDisconnected):
            logger.debug("event=ws_send_after_disconnect protocol=graphql-transport-ws")
            return
        logger.error("event=ws_operation_failed protocol=%s", self.protocol, exc_info=error)

    async def send_message(self, message: TransportMessage) -> None:
        """Each message encoded once; an operation's result over the response limit becomes an
        `error` for that operation, which ends it. Other messages go through the base handlers
        (the acknowledgement takes the socket's place in its caller's budgets)."""
        fields = cast(Mapping[str, Any], message)
        if fields["type"] != "next":
            await super().send_message(message)
            return
        adapter = _adapter(self)
        encoded = adapter.encode(cast(Mapping[str, object], message))
        await self._send_next(fields["id"], encoded.decode(), len(encoded))

    async def _send_next(self, operation_id: str, text: str, size: int) -> None:
        """Send an encoded `next` message, or refuse it when over the response limit."""
        limit = _response_limit(self.context)
        if size > limit:
            _log_refused(self.protocol, size, limit)
            operation = self.operations.pop(operation_id, None)
            if operation is not None:
                operation.completed = True  # nothing more for this id, not even `complete`
            await _adapter(self).send_json(
                {"id": operation_id, "type": "error", "payload": [_too_large(limit)]}
            )
            raise _OperationStreamClosed
        WS_MESSAGES_PUSHED.inc()
        await _adapter(self).send_text(text)

    async def _send_shared_next(
        self, operation: Operation[AppContext, None], shared: SharedResult
    ) -> None:
        """A shared result's `next` message, its payload encoded once for every member."""
        if operation.completed:
            return
        adapter = _adapter(self)
        text, size = shared.next_frame(
            operation.id, lambda result: adapter.encode(_next_payload(result))
        )
        await self._send_next(operation.id, text, size)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """A persisted query's document from the store, or its refusal as an `error` message."""
        if self.connection_acknowledged and message.get("id") not in self.operations:
            payload, refused = _with_persisted_document(self.view, message.get("payload"))
            if refused is not None:
                error = TransportErrorMessage(
                    type="error", id=message["id"], payload=[refused.formatted]
                )
                await self.send_message(error)
                return
            if payload is not None:
                message = cast("SubscribeMessage", {**message, "payload": payload})
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[AppContext, None]) -> None:
        """Shared fields join the shared stream; anything else runs as strawberry runs it."""
        # Counted in `orders_ws_subscriptions` while it runs (no context manager: every
        # object an operation's task keeps costs each of thousands of subscribers).
        field = subscribed_field(operation.query, operation.operation_name)
        gauge = None if field is None else WS_SUBSCRIPTIONS.labels(subscription_label(field))
        if gauge is not None:
            gauge.inc()
        try:
            await self._run_operation(operation)
        finally:
            if gauge is not None:
                gauge.dec()
            _released(self.view)

    async def _run_operation(self, operation: Operation[AppContext, None]) -> None:
        field_name = shared_field(operation.query, operation.operation_name)
        shared = getattr(self.view, "shared_subscriptions", None)
        if field_name is None or not isinstance(shared, SharedSubscriptions):
            await super().run_operation(operation)
            return
        key = shared.key(
            operation.query, operation.operation_name, operation.variables, self.context.principal
        )
        # Only the subscriber that starts the stream pays for the detached context.
        make_start = functools.partial(_detached_start, self.schema, operation, self.context)
        member = Member(_DirectSender.of(self, operation))
        shared.join(key, field_name, make_start, member)
        try:
            while (shared_result := await member.next()) is not END:
                result = shared_result.result
                if isinstance(result, PreExecutionError):  # only ever a stream's first
                    await self._handle_pre_execution_error(operation, result)
                    return
                await self._send_shared_next(operation, shared_result)
        except _OperationStreamClosed:
            return
        finally:
            shared.leave(key, member)
        with contextlib.suppress(_OperationStreamClosed):
            await operation.send_operation_message(
                TransportCompleteMessage(id=operation.id, type="complete")
            )


class _DirectSender:
    """How the shared stream's loop sends one operation's results straight to its socket
    (`api.http.ws_fanout`), without waking the operation's task: a result that is an error, over
    the response limit, or finds the client not reading is HELD for the task to send."""

    __slots__ = ("_adapter", "_limit", "_operation", "_operations", "_writer")

    def __init__(
        self,
        handler: SharingGraphQLTransportWSHandler,
        operation: Operation[AppContext, None],
        writer: FrameWriter,
    ) -> None:
        self._adapter = _adapter(handler)
        self._limit = _response_limit(handler.context)
        self._operations = handler.operations
        self._operation = operation
        self._writer = writer

    @classmethod
    def of(
        cls, handler: SharingGraphQLTransportWSHandler, operation: Operation[AppContext, None]
    ) -> _DirectSender | None:
        """The sender for `operation`, when its socket takes frames written directly."""
        writer = FrameWriter.of(handler.context.request.scope)
        return None if writer is None else cls(handler, operation, writer)

    def _encode(self, result: ExecutionResult) -> bytes:
        return self._adapter.encode(_next_payload(result))

    def __call__(self, shared: SharedResult) -> Written:
        operation = self._operation
        if operation.completed or self._operations.get(operation.id) is not operation:
            return Written.CLOSED  # stopped: its task is being cancelled
        if isinstance(shared.result, PreExecutionError):
            return Written.HELD
        frame, size = shared.websocket_frame(operation.id, self._encode)
        return Written.HELD if size > self._limit else self._writer.write(frame)


def _next_payload(result: ExecutionResult) -> dict[str, object]:
    """A `next` message's payload, as strawberry's `Operation.send_next` builds it."""
    payload: dict[str, object] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return payload


def _detached_start(
    schema: BaseSchema, operation: Operation[AppContext, None], context: AppContext
) -> Callable[[], AsyncGenerator[ExecutionResult, None]]:
    """How a shared stream starts `operation`'s execution, detached from its socket."""
    return _shared_start(
        schema, operation.query, operation.operation_name, operation.variables, _detached(context)
    )


def _shared_start(
    schema: BaseSchema,
    query: str,
    operation_name: str | None,
    variables: dict[str, object] | None,
    context: AppContext,
) -> Callable[[], AsyncGenerator[ExecutionResult, None]]:
    """How a shared stream starts its execution: from the first subscriber's operation, holding
    none of its connection (the stream may outlive it, serving later subscribers)."""

    async def results() -> AsyncGenerator[ExecutionResult, None]:
        source = await schema.stream(
            query, variable_values=variables, context_value=context, operation_name=operation_name
        )
        async with aclosing(source):
            async for result in source:
                if isinstance(result, ExecutionResult):
                    yield result

    return results


async def _gone(*_: object) -> Any:
    raise WebSocketDisconnected


def _detached(context: AppContext) -> AppContext:
    """A copy of a websocket's context without its connection: the same caller, request
    headers and services, but no way to the socket (whose buffers would stay alive with it)."""
    scope = {
        name: value
        for name, value in context.request.scope.items()
        if name not in (WEBSOCKET_PROTOCOL, WEBSOCKET_LEASE)
    }
    request = WebSocket(scope, receive=_gone, send=_gone)
    return dataclasses.replace(context, request=request, response=None)
