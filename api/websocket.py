"""The websocket side of the GraphQL view: text frames, queries over the legacy protocol, and
shared live queries, on top of the handshake deadline and token expiry of `api.ws_handlers`.

Both GraphQL websocket protocols carry JSON as text. The view encodes with orjson (bytes), and
strawberry sends bytes as binary frames, which the `graphql-ws` reference client rejects
("Message is missing the 'type' property") and a browser hands over as a Blob; so messages are
decoded to text once here. The legacy `graphql-ws` protocol (subscriptions-transport-ws) also
runs queries and mutations sent with `start`; strawberry only subscribes there, so those are run
like the newer protocol runs them. Both protocols take Apollo's persisted queries
(`api.persisted_queries`) in the operation's `extensions`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import aclosing, contextmanager
from typing import cast

from graphql import FieldNode, GraphQLError, OperationType, get_operation_ast, parse
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
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
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.types import (
    CompleteMessage,
    ErrorMessage,
    StartMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

from api.context import AppContext
from api.persisted_queries import PersistedQueries, PersistedQueryError
from api.shared_subscriptions import END, SharedSubscriptions, shared_field
from api.ws_handlers import LegacyWSHandler, TransportWSHandler
from metrics.instruments import WS_MESSAGES_PUSHED, WS_SUBSCRIPTIONS, subscription_label

_PUSHES = frozenset({"next", "data"})
"""The protocol messages that carry a result (graphql-transport-ws `next`, graphql-ws `data`)."""


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
    """Sends every protocol message as a text frame."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        """The view's JSON encoding, sent as text."""
        if message.get("type") in _PUSHES:
            WS_MESSAGES_PUSHED.inc()
        encoded = self.view.encode_json(message)
        text = encoded.decode() if isinstance(encoded, bytes) else encoded
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class LegacyGraphQLWSHandler(LegacyWSHandler):
    """The legacy protocol, answering queries and mutations as well as subscriptions.

    A query or mutation gets one `data` message and then `complete`, as subscriptions-transport-ws
    servers answer them; errors before execution (syntax, validation) are one `error` message.
    """

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
            await self.send_message(CompleteMessage(type="complete", id=operation_id))
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)


class SharingGraphQLTransportWSHandler(TransportWSHandler):
    """graphql-transport-ws, with the live queries of `api.shared_subscriptions` run once for
    every subscriber that asks the same (each still gets its own messages)."""

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
        with _counted_subscription(operation.query, operation.operation_name):
            await self._run_operation(operation)

    async def _run_operation(self, operation: Operation[AppContext, None]) -> None:
        field_name = shared_field(operation.query, operation.operation_name)
        shared = getattr(self.view, "shared_subscriptions", None)
        if field_name is None or not isinstance(shared, SharedSubscriptions):
            await super().run_operation(operation)
            return
        key = shared.key(
            operation.query, operation.operation_name, operation.variables, self.context.principal
        )
        try:
            async with shared.join(key, field_name, lambda: self._results(operation)) as queue:
                first = True
                while (result := await queue.get()) is not END:
                    if first and isinstance(result, PreExecutionError):
                        await self._handle_pre_execution_error(operation, result)
                        return
                    first = False
                    await operation.send_next(result)
            await operation.send_operation_message(
                TransportCompleteMessage(id=operation.id, type="complete")
            )
        except _OperationStreamClosed:
            return

    async def _results(
        self, operation: Operation[AppContext, None]
    ) -> AsyncGenerator[ExecutionResult, None]:
        source = await self.schema.stream(
            operation.query,
            variable_values=operation.variables,
            context_value=self.context,
            root_value=self.root_value,
            operation_name=operation.operation_name,
        )
        async with aclosing(source):
            async for result in source:
                if isinstance(result, ExecutionResult):
                    yield result
