"""The request log's line for each websocket operation (`api.http.request_record`): one per
subscription, query or mutation, written when it ends (a subscription's duration is its
lifetime), with the connection's correlation id (its handshake's `X-Correlation-Id`, else one
made for it, as its commands' events carry) and the handshake's trace id."""

from __future__ import annotations

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message as TransportMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage

from api.graphql.context import AppContext
from api.graphql.ws_view import LegacyGraphQLWSHandler, SharingGraphQLTransportWSHandler
from api.http.request_record import RequestRecord, current_request, note_message


def _record(context: AppContext, operation_name: str | None, query: str) -> RequestRecord:
    return RequestRecord(
        transport="ws",
        correlation_id=context.correlation_id,
        traceparent=context.request.headers.get("traceparent"),
        operation=operation_name or "",
        query=query,
    )


class LoggedTransportWSHandler(SharingGraphQLTransportWSHandler):
    """graphql-transport-ws with a request line per operation."""

    async def run_operation(self, operation: Operation[AppContext, None]) -> None:
        """Run the operation (in its own task) as the current request, then log it."""
        with current_request(
            _record(self.context, operation.operation_name, operation.query)
        ) as record:
            try:
                await super().run_operation(operation)
            finally:
                record.log()

    async def send_message(self, message: TransportMessage) -> None:
        """Note errors sent for the current operation, then send."""
        note_message(message)
        await super().send_message(message)


class LoggedLegacyWSHandler(LegacyGraphQLWSHandler):
    """graphql-ws (legacy) with a request line per operation."""

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        """Run the operation (in its own task) as the current request, then log it."""
        with current_request(_record(self.context, operation_name, query)) as record:
            try:
                await super().handle_async_results(operation_id, query, operation_name, variables)
            finally:
                record.log()

    async def send_message(self, message: OperationMessage) -> None:
        """Note errors sent for the current operation, then send."""
        note_message(message)
        await super().send_message(message)


__all__ = ["LoggedLegacyWSHandler", "LoggedTransportWSHandler"]
