"""The GraphQL endpoint: strawberry's ASGI view with our auth gate, typed context and orjson."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from functools import lru_cache
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError, build_schema
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema import BaseSchema, Schema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from api.graphql.context import AppContext
from api.graphql.extensions import BAD_USER_INPUT, INTERNAL_ERROR_CODE
from api.graphql.persisted_queries import PersistedQueries, PersistedQueryError
from api.graphql.services import Services
from api.graphql.shared_subscriptions import SharedSubscriptions
from api.graphql.ws_request_log import LoggedLegacyWSHandler, LoggedTransportWSHandler
from api.graphql.ws_view import TextWebSocketAdapter
from api.http.auth import Principal, Unauthenticated
from api.http.budgets import CALLER_STATE, RATE_LIMITED, Caller, IdentityBudgets, RateLimited
from api.http.limits import BudgetLimits
from api.http.memory import MemoryReclaimer
from api.http.request_record import CORRELATION_HEADER, correlation_id_of, note_errors
from api.settings.persisted_queries import PersistedQuerySettings
from projections.redis_pool import pool_user

logger = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
"""The GraphQL-over-HTTP spec's media type; answered with when the client accepts it."""


def _quality(accept: str, media_type: str) -> float:
    """The q-value `accept` gives `media_type` exactly (0 when it is not listed)."""
    best = 0.0
    for part in accept.split(","):
        name, *params = (piece.strip() for piece in part.split(";"))
        if name.lower() != media_type:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best = max(best, quality)
    return best


_JSON_TYPES = (GRAPHQL_RESPONSE, "application/json", "application/*", "*/*")

# The negotiation is asked three times a request, of the few Accept headers clients send:
# each answer is cached by header (bounded, so odd headers only evict each other).


@lru_cache(maxsize=64)
def accepts_json(accept: str | None) -> bool:
    """Whether a response in one of our JSON media types is acceptable (no header: yes)."""
    if not accept or not accept.strip():
        return True
    return any(_quality(accept, media_type) > 0 for media_type in _JSON_TYPES)


@lru_cache(maxsize=64)
def response_media_type(accept: str | None) -> str:
    """`application/graphql-response+json` when the client accepts it at least as much as
    `application/json` (GraphQL over HTTP), else `application/json`."""
    if not accept:
        return "application/json"
    preferred = _quality(accept, GRAPHQL_RESPONSE)
    if preferred > 0 and preferred >= _quality(accept, "application/json"):
        return GRAPHQL_RESPONSE
    return "application/json"


def is_request_error(response: GraphQLHTTPResponse) -> bool:
    """Nothing was executed: no data, and every error is about the request itself. Such errors
    carry no `path` (field errors always do, even when they null the whole `data`); an unexpected
    error, masked as INTERNAL_SERVER_ERROR, is the server's fault, not the request's."""
    errors = response.get("errors")
    if response.get("data") is not None or not errors:
        return False
    return all(_about_the_request(error) for error in errors)


def _about_the_request(error: object) -> bool:
    if not isinstance(error, dict) or "path" in error:
        return False
    extensions = error.get("extensions")
    return not (isinstance(extensions, dict) and extensions.get("code") == INTERNAL_ERROR_CODE)


def _rate_limited(error: RateLimited, media_type: str) -> Response:
    body = {"errors": [error.formatted]}
    return Response(
        orjson.dumps(body),
        status_code=429,
        media_type=media_type,
        headers={"Retry-After": str(error.retry_after)},
    )


def refused_retry_after(response: GraphQLHTTPResponse) -> int | None:
    """`retryAfter` of a response that is nothing but a RATE_LIMITED refusal (no data), else
    None: such an answer is HTTP 429 with Retry-After."""
    errors = response.get("errors")
    if response.get("data") is not None or not errors:
        return None
    waits = []
    for error in errors:
        extensions = error.get("extensions") if isinstance(error, dict) else None
        if not isinstance(extensions, dict) or extensions.get("code") != RATE_LIMITED:
            return None
        waits.append(int(extensions.get("retryAfter", 1)))
    return max(waits)


def _unauthenticated(error: Unauthenticated, media_type: str) -> Response:
    body = {"errors": [{"message": error.message, "extensions": error.extensions}]}
    return Response(
        orjson.dumps(body),
        status_code=401,
        media_type=media_type,
        headers={"WWW-Authenticate": "Bearer"},
    )


class OrdersGraphQL(GraphQL[AppContext, None]):
    """GraphQL over HTTP and websockets; every operation needs a valid caller.

    Without a token, only GraphiQL's page is served. HTTP requests are authenticated before
    strawberry sees them (an unauthenticated POST gets a 401 GraphQL error response);
    websockets authenticate with `connection_init`'s payload, which must arrive within
    `ws_init_timeout` seconds, and are closed when their token expires (`api.graphql.ws_protocols`).

    Each caller is held to its identity's budgets (`budgets`, README "Budgets"): over HTTP, at
    most so many requests in flight (one more is answered 429, RATE_LIMITED); the websocket
    handlers count sockets and operations; `api.graphql.command_rate` prices mutations.
    """

    websocket_adapter_class = TextWebSocketAdapter
    graphql_ws_handler_class = LoggedLegacyWSHandler
    graphql_transport_ws_handler_class = LoggedTransportWSHandler

    def __init__(
        self,
        schema: BaseSchema,
        *,
        ws_init_timeout: float = 5.0,
        graphiql_html: str | None = None,
        budgets: IdentityBudgets | None = None,
        persisted_queries: PersistedQuerySettings | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            keep_alive=True,
            keep_alive_interval=15,
            connection_init_wait_timeout=timedelta(seconds=ws_init_timeout),
        )
        self._graphiql_html = graphiql_html
        self.shared_subscriptions = SharedSubscriptions()
        self.budgets = budgets or IdentityBudgets(BudgetLimits())
        limits = getattr(schema, "limits", None)
        self.persisted_queries = PersistedQueries(
            persisted_queries or PersistedQuerySettings(),
            schema._schema if isinstance(schema, Schema) else build_schema(schema.as_str()),
            **({"max_tokens": limits.max_tokens} if limits is not None else {}),
        )
        self.reclaimer = MemoryReclaimer()

    async def render_graphql_ide(self, request: Request) -> Response:
        """The GraphiQL page given (the service's own bundle), else strawberry's."""
        if self._graphiql_html is None:
            return await super().render_graphql_ide(request)
        return HTMLResponse(self._graphiql_html)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate HTTP operations and hold them to the caller's request budget, then let
        strawberry handle the request."""
        caller: Caller | None = None
        if scope["type"] == "http":
            request = Request(scope, receive)
            if not self.should_render_graphql_ide(self.request_adapter_class(request)):
                services: Services = request.state.services
                try:
                    principal = await services.authenticator.verify(
                        request.headers.get("authorization")
                    )
                except Unauthenticated as error:
                    note_errors([error])
                    media_type = response_media_type(request.headers.get("accept"))
                    await _unauthenticated(error, media_type)(scope, receive, send)
                    return
                request.state.principal = principal
                caller = self._admit(request, principal)
                if caller is None:
                    refused = RateLimited("requests in flight", 1.0)
                    note_errors([refused])
                    media_type = response_media_type(request.headers.get("accept"))
                    await _rate_limited(refused, media_type)(scope, receive, send)
                    return
        # The request's Redis reads count against its caller's share of the pool.
        reading_for = pool_user.set(caller.identity if caller is not None else None)
        try:
            await super().__call__(scope, receive, send)
        except ClientDisconnect:
            # Gone before its body was read (or cut off for trickling it): no one to answer,
            # and nothing worth more than a debug line.
            logger.debug("event=client_disconnected path=%s", scope.get("path"))
        finally:
            pool_user.reset(reading_for)
            if caller is not None and caller.budgeted:
                self.budgets.requests.release(caller.identity)

    def _admit(self, request: Request, principal: Principal) -> Caller | None:
        """The request's `Caller` (noted on its state for the command rate), holding one of its
        identity's requests in flight; None when they are all taken."""
        client = request.client
        caller = Caller.of(principal, client.host if client else None, self.budgets)
        if caller.budgeted and not self.budgets.requests.try_acquire(caller.identity):
            return None
        setattr(request.state, CALLER_STATE, caller)
        return caller

    async def get_context(self, request: Request | WebSocket, response: Any) -> AppContext:
        """The typed per-request context."""
        principal: Principal | None = getattr(request.state, "principal", None)
        return AppContext(
            request=request,
            response=response,
            services=request.state.services,
            principal=principal,
            correlation_id=correlation_id_of(request.headers.get(CORRELATION_HEADER)),
        )

    async def execute_operation(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: AppContext,
        root_value: None,
        sub_response: Response,
    ) -> Any:
        """Persisted queries (`api.graphql.persisted_queries`): a request naming its document by
        hash runs the stored document; one that may not run gets its coded GraphQL error in the
        negotiated JSON, where strawberry answers a plain-text 400 without a query."""
        if isinstance(request_data, GraphQLRequestData) and accepts_json(
            request.headers.get("accept")
        ):
            try:
                query = self.persisted_queries.document(request_data.query, request_data.extensions)
            except PersistedQueryError as error:
                logger.debug("event=persisted_query_refused code=%s", error.code)
                return ExecutionResult(data=None, errors=[error])
            request_data = dataclasses.replace(request_data, query=query)
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: AppContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's execution; a mutation sent with GET is 405 Method Not Allowed (GraphQL
        over HTTP), where strawberry answers 400; an Accept header that allows none of our JSON
        media types is 406 Not Acceptable, before anything runs. An operationName the document
        does not define is a GraphQL request error (BAD_USER_INPUT) in the negotiated JSON, where
        strawberry answers a plain-text 400."""
        if not accepts_json(request.headers.get("accept")):
            raise HTTPException(
                406, f"Not Acceptable: answers are {GRAPHQL_RESPONSE} or application/json"
            )
        try:
            return await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
        except HTTPException as error:
            if isinstance(error.__cause__, InvalidOperationTypeError):
                if error.__cause__.operation_type is OperationType.SUBSCRIPTION:
                    problem = GraphQLError(
                        "Subscriptions are served over websockets at /graphql "
                        "(graphql-transport-ws or graphql-ws), not over HTTP.",
                        extensions={"code": BAD_USER_INPUT},
                    )
                    return ExecutionResult(data=None, errors=[problem])
                error.status_code = 405
            if isinstance(error.__cause__, CannotGetOperationTypeError):
                name = request_data.operation_name
                if name is not None and not isinstance(name, str):
                    sub_response.status_code = 400  # not a well-formed request, on any media type
                problem = GraphQLError(
                    error.__cause__.as_http_error_reason(), extensions={"code": BAD_USER_INPUT}
                )
                return ExecutionResult(data=None, errors=[problem])
            raise

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """Strawberry's result, its first error's code noted for the request log."""
        note_errors(result.errors)
        return await super().process_result(request, result)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        """Strawberry's sub-response, noting the media type the client asked to get back."""
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = response_media_type(request.headers.get("accept"))
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """Strawberry's response, with the negotiated Content-Type (it always says JSON).

        An answer that is only a RATE_LIMITED refusal (nothing ran) is HTTP 429 with
        Retry-After, on either media type.

        Under `application/graphql-response+json`, a request error (the document did not parse or
        validate, or the variables did not coerce: nothing was executed) is HTTP 400 without a
        `data` entry, as GraphQL over HTTP requires. Plain `application/json` keeps 200 and
        `"data": null`, which is that media type's rule.
        """
        graphql_response = sub_response.media_type == GRAPHQL_RESPONSE
        retry_after = (
            refused_retry_after(response_data) if isinstance(response_data, dict) else None
        )
        if retry_after is not None:
            sub_response.status_code = 429
            sub_response.headers["Retry-After"] = str(retry_after)
        elif (
            graphql_response and isinstance(response_data, dict) and is_request_error(response_data)
        ):
            response_data = response_data.copy()
            response_data.pop("data", None)
            sub_response.status_code = 400
        response = super().create_response(response_data, sub_response)
        if graphql_response:
            response.headers["content-type"] = GRAPHQL_RESPONSE
        return response

    async def on_ws_connect(self, context: AppContext) -> UnsetType | dict[str, object] | None:
        """Websockets carry the token in `connection_init`'s payload; no token, no connection."""
        params = context.connection_params or {}
        authorization = params.get("authorization", params.get("Authorization"))
        try:
            context.principal = await context.services.authenticator.verify(
                authorization if isinstance(authorization, str) else None
            )
        except Unauthenticated as error:
            raise ConnectionRejectionError({"message": error.message}) from error
        acknowledged: UnsetType = UNSET  # an ack without a payload
        return acknowledged

    def encode_json(self, data: object) -> bytes:
        """orjson: an order of magnitude faster than the stdlib on every response."""
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        """orjson for request bodies too."""
        return orjson.loads(data)
