"""The Starlette application: GraphQL at /graphql (GraphiQL for browsers), health at /healthz,
the dashboard at /dashboard and its bundles under /static; clients built once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from strawberry.schema import BaseSchema

from api.auth import Unauthenticated
from api.bootstrap import Services, open_services
from api.budgets import IdentityBudgets
from api.config import Settings
from api.gc_tuning import tune_for_serving
from api.limits import RequestLimitsMiddleware
from api.logs import configure_logging
from api.pages import STATIC_DIR, WebPages
from api.schema import build_schema
from api.view import OrdersGraphQL
from eventstore.port import EventStoreError, WritePathCheck
from projections.views import RunnerState, ViewsUnavailable

logger = logging.getLogger(__name__)


HEALTH_CHECK_TIMEOUT = 2.0
"""A part that does not answer a health check within this long counts as down."""


async def _check(part: str, check: Callable[[], Awaitable[object]]) -> str | None:
    """None when `check` passes in time, else why not (logged at debug: the outage log and
    the parts' own logs say it once)."""
    try:
        async with asyncio.timeout(HEALTH_CHECK_TIMEOUT):
            await check()
    except TimeoutError:
        reason = "timeout"
    except (EventStoreError, RedisError, OSError, ViewsUnavailable) as error:
        reason = f"{type(error).__name__}: {error}"
    else:
        return None
    logger.debug("event=health_check_failed part=%s reason=%s", part, reason)
    return reason


async def _views_ready(services: Services) -> None:
    _, ready = await services.read_side.views.watermark()
    if not ready:
        raise ViewsUnavailable("the views are not caught up with the log")


def _details_allowed(request: Request, services: Services) -> bool:
    if services.settings.health_details == "open":
        return True
    try:
        principal = services.authenticator.authenticate(request.headers.get("authorization"))
    except Unauthenticated:
        return False
    return principal.is_staff


def _relay_problem(services: Services) -> str | None:
    """None without a relay in this process; "" while every relay worker runs; else why not."""
    if not services.relays:
        return None
    down = [r for r in services.relays if r.state is not RunnerState.RUNNING]
    if not down:
        return ""
    return down[0].last_error or f"relay {down[0].state}"


async def healthz(request: Request) -> Response:
    """200 while the service can answer truthfully, 503 when a part is down: the event store
    (reads, and the write path: the last append's outcome or a probe), Redis, or views that
    are being refilled after a loss. Anyone sees the status; the parts and the head position
    only staff (or everyone with HEALTH_DETAILS=open). A Kafka relay running in this process is
    a part of the details, but not of the status."""
    services: Services = request.state.services
    head: list[int] = []

    async def read_head() -> None:
        head.append(await services.store.head_position())

    async def check_writes() -> None:
        if isinstance(services.store, WritePathCheck):
            await services.store.check_writes()

    async def ping_redis() -> None:
        await services.read_side.redis.ping()

    checks = {
        "store": read_head,
        "writes": check_writes,
        "redis": ping_redis,
        "views": lambda: _views_ready(services),
    }
    results = await asyncio.gather(*(_check(part, check) for part, check in checks.items()))
    failures = {part: reason for part, reason in zip(checks, results, strict=True) if reason}
    if "redis" in failures:
        failures.pop("views", None)  # unknown, not a second failure
    healthy = not failures
    body: dict[str, object] = {"status": "ok" if healthy else "unavailable"}
    if _details_allowed(request, services):
        for part in checks:
            body[part] = "ok" if part not in failures else "unavailable"
        relay = _relay_problem(services)
        if relay is not None:
            # Reported, not counted: the API answers truthfully while Kafka is away, and the
            # relay catches up from its checkpoint when it is back.
            body["relay"] = "ok" if not relay else "unavailable"
            if relay:
                failures = {**failures, "relay": relay}
        if failures:
            body["reasons"] = failures
        if head:
            body["headPosition"] = str(head[0])
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
        schema if schema is not None else build_schema(limits=settings.query_limits),
        ws_init_timeout=settings.connection_limits.ws_init_timeout,
        graphiql_html=pages.graphiql_html(),
        budgets=IdentityBudgets(settings.budget_limits),
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
                settings.store_kind,
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
        # Outermost: oversized requests are refused before routing, auth or parsing.
        middleware=[Middleware(RequestLimitsMiddleware, limits=settings.request_limits)],
    )


def app_from_env() -> Starlette:
    """Zero-argument factory for uvicorn (`--factory api.app:app_from_env`)."""
    settings = Settings.from_env()
    settings.check_can_serve()
    configure_logging(settings.log_level)
    return create_app(settings, tune_gc=True)
