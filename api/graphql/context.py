"""The per-request GraphQL context: typed, built by the view for every request or websocket."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from api.graphql.services import Services
from api.http.auth import Principal
from application.codec import SYSTEM_ACTOR
from application.handler import CommandHandler
from application.repository import OrderRepository
from eventstore.port import EventStore
from projections.queries import OrderQueries


@dataclass(slots=True, kw_only=True)
class AppContext:
    """What resolvers see as `info.context`.

    Mutable on purpose: on websockets strawberry stores `connection_params` after the connection
    is accepted, and the principal is known only then.
    """

    request: Request | WebSocket
    response: Response | WebSocket | None
    services: Services
    principal: Principal | None
    correlation_id: str
    connection_params: dict[str, object] | None = field(default=None)

    @property
    def handler(self) -> CommandHandler:
        """The command handler."""
        return self.services.handler

    @property
    def repository(self) -> OrderRepository:
        """Reads orders from the event store."""
        return self.services.repository

    @property
    def store(self) -> EventStore:
        """The event store."""
        return self.services.store

    @property
    def queries(self) -> OrderQueries:
        """Reads (and live updates) of the read model in Redis."""
        return self.services.read_side.queries

    @property
    def actor(self) -> str:
        """Who the events' metadata names as acting: the caller's subject."""
        return self.principal.sub if self.principal is not None else SYSTEM_ACTOR
