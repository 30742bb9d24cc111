"""The Starlette application: GraphQL at /graphql (GraphiQL for browsers), health at /livez,
/readyz and /healthz (`api.wiring.health`), Prometheus metrics at /metrics
(`api.wiring.metrics_page`), the dashboard at /dashboard and its bundles under /static; clients
built once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from strawberry.schema import BaseSchema

from api.graphql.schema import build_schema
from api.graphql.view import OrdersGraphQL
from api.http.budgets import IdentityBudgets
from api.http.gc_tuning import tune_for_serving
from api.http.limits import RequestLimitsMiddleware
from api.http.logs import configure_logging
from api.http.pages import STATIC_DIR, WebPages
from api.http.request_log import RequestLogMiddleware
from api.http.security_headers import SecurityHeadersMiddleware
from api.http.shutdown import Drain
from api.settings.config import Settings
from api.wiring.bootstrap import Startup
from api.wiring.factory_serving import factory_extras
from api.wiring.health import healthz, livez, readyz
from api.wiring.metrics_page import metrics_page
from api.wiring.starting import StartingGate
from metrics.exposition import mark_process_dead
from telemetry import tracing

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    schema: BaseSchema | None = None,
    *,
    projectors: int = 1,
    tune_gc: bool = False,
    static_dir: Path = STATIC_DIR,
    drain: Drain | None = None,
) -> Starlette:
    """The application for `settings`; `schema` defaults to the public one; `projectors` is the
    number of projector workers run in-process (0: they run elsewhere, `orders project`).
    `tune_gc`: a server process of its own (not a test) tunes the garbage collector once started
    (see `api.http.gc_tuning`). `static_dir` holds the web bundles (see `api.http.pages`). `drain`
    is flipped by the server on SIGTERM (`api.http.shutdown`); /readyz reads it."""
    pages = WebPages.load(static_dir)
    graphql = OrdersGraphQL(
        schema if schema is not None else build_schema(limits=settings.query_limits),
        ws_init_timeout=settings.connection_limits.ws_init_timeout,
        graphiql_html=pages.graphiql_html(),
        budgets=IdentityBudgets(settings.budget_limits),
        persisted_queries=settings.persisted_queries,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        # Binds at once, its services opening meanwhile when the store is down
        # (api.wiring.starting).
        async with Startup(settings, projectors=projectors).running() as startup:
            if tune_gc:
                tune_for_serving()
            logger.info(
                "event=started host=%s port=%d store=%s services=%s",
                settings.host,
                settings.port,
                settings.store_kind,
                "open" if startup.services is not None else "opening",
            )
            yield {"startup": startup, "drain": drain if drain is not None else Drain()}
        # A worker of a multi-process deployment: its live gauges leave the others' sum.
        mark_process_dead()
        logger.info("event=stopped")

    return Starlette(
        routes=_routes(graphql, pages, static_dir),
        lifespan=lifespan,
        middleware=[
            # Outermost: every answer, the refusals below too, carries the security headers,
            # and every /graphql answer its correlation id and request line.
            Middleware(SecurityHeadersMiddleware, cdn_fallback=not pages.built),
            Middleware(RequestLogMiddleware),
            # Oversized requests are refused before routing, auth or parsing.
            Middleware(RequestLimitsMiddleware, limits=settings.request_limits),
            # Services in each request's state; UNAVAILABLE until they are open.
            Middleware(StartingGate),
        ],
    )


def _routes(graphql: OrdersGraphQL, pages: WebPages, static_dir: Path) -> list[BaseRoute]:
    """The service's paths: GraphQL over HTTP and websockets, health, metrics, the pages."""
    # Without a build there is nothing under /static: its paths are 404s like any unknown one.
    static = (
        [Mount("/static", StaticFiles(directory=static_dir), name="static")] if pages.built else []
    )
    return [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/dashboard", pages.dashboard, methods=["GET"]),
        *static,
    ]


def app_from_env() -> Starlette:
    """Zero-argument factory for uvicorn (`--factory api.wiring.app:app_from_env`), with what
    `orders serve` installs that an application can install from inside
    (`api.wiring.factory_serving`): the SIGTERM grace, METRICS_PORT, the secret warnings and the
    tracer's flush at exit."""
    settings = Settings.from_env()
    settings.check_can_serve()
    configure_logging(settings.log_level, settings.log_format)
    for warning in settings.secret_warnings():
        logger.warning("event=weak_secret detail=%r", warning)
    tracing.start("orders-api")
    drain = Drain()
    app = create_app(settings, tune_gc=True, drain=drain)
    serving = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        try:
            async with (
                factory_extras(
                    drain, settings.shutdown_grace, settings.host, settings.metrics_port
                ),
                serving(app) as state,
            ):
                yield state or {}
        finally:
            tracing.stop()

    app.router.lifespan_context = lifespan
    return app
