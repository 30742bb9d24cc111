"""The Starlette application: GraphQL at /graphql (GraphiQL for browsers), health at /healthz,
the dashboard at /dashboard and its bundles under /static; clients built once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from strawberry.schema import BaseSchema

from api.bootstrap import Services, open_services
from api.config import Settings
from api.gc_tuning import tune_for_serving
from api.logs import configure_logging
from api.pages import STATIC_DIR, WebPages
from api.schema import build_schema
from api.view import OrdersGraphQL
from eventstore.port import EventStoreError

logger = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    """200 when the event store and Redis answer, 503 (naming what failed) when one does not."""
    services: Services = request.state.services
    body: dict[str, str] = {"status": "ok"}
    try:
        body["headPosition"] = str(await services.store.head_position())
        body["store"] = "ok"
    except EventStoreError as error:
        logger.warning("event=health_check_failed part=store error=%r", error)
        body["store"] = "unreachable"
    try:
        await services.read_side.redis.ping()
        body["redis"] = "ok"
    except (RedisError, OSError) as error:
        logger.warning("event=health_check_failed part=redis error=%r", error)
        body["redis"] = "unreachable"
    healthy = body["store"] == "ok" and body["redis"] == "ok"
    if not healthy:
        body["status"] = "unavailable"
    return Response(
        orjson.dumps(body), status_code=200 if healthy else 503, media_type="application/json"
    )


def create_app(
    settings: Settings,
    schema: BaseSchema | None = None,
    *,
    projectors: int = 1,
    tune_gc: bool = False,
    static_dir: Path = STATIC_DIR,
) -> Starlette:
    """The application for `settings`; `schema` defaults to the public one; `projectors` is the
    number of projector workers run in-process (0: they run elsewhere, `orders project`).
    `tune_gc`: a server process of its own (not a test) tunes the garbage collector once started
    (see `api.gc_tuning`). `static_dir` holds the web bundles (see `api.pages`)."""
    pages = WebPages.load(static_dir)
    graphql = OrdersGraphQL(
        schema if schema is not None else build_schema(),
        graphiql_html=pages.graphiql_html(),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        async with open_services(settings, projectors=projectors) as services:
            if tune_gc:
                tune_for_serving()
            logger.info(
                "event=started host=%s port=%d store=%s",
                settings.host,
                settings.port,
                "eventstoredb" if settings.esdb_url else "embedded",
            )
            yield {"services": services}
        logger.info("event=stopped")

    # Without a build there is nothing under /static: its paths are 404s like any unknown one.
    static = (
        [Mount("/static", StaticFiles(directory=static_dir), name="static")] if pages.built else []
    )
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/dashboard", pages.dashboard, methods=["GET"]),
            *static,
        ],
        lifespan=lifespan,
    )


def app_from_env() -> Starlette:
    """Zero-argument factory for uvicorn (`--factory api.app:app_from_env`)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings, tune_gc=True)
