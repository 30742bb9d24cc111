"""Health for orchestrators and people: `/livez` (the process and its event loop answer),
`/readyz` (it can serve: store, Redis, views; 503 while draining) and `/healthz` (readiness with
the parts' details for staff).

Liveness never looks at a dependency: a Redis outage should take an instance out of rotation
(readiness), not get it restarted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from api.graphql.services import Services
from api.http.auth import Unauthenticated
from api.http.shutdown import Drain
from eventstore.group_worker import RunnerState
from eventstore.port import EventStoreError, WritePathCheck
from projections.status import views_behind
from projections.views import ViewsUnavailable

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
    """The views are filled and no projector (here or in `orders project`) is known to fail
    or to be lost: otherwise what they answer may be stale."""
    _, ready = await services.read_side.views.watermark()
    if not ready:
        raise ViewsUnavailable("the views are not caught up with the log")
    reason = views_behind(await services.read_side.statuses())
    if reason is not None:
        raise ViewsUnavailable(f"the views are behind the log ({reason})")


async def _details_allowed(request: Request, services: Services) -> bool:
    if services.settings.health_details == "open":
        return True
    try:
        principal = await services.authenticator.verify(request.headers.get("authorization"))
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


_PARTS = ("store", "writes", "redis", "views")
"""The parts readiness checks, in the order /healthz shows them."""


async def _failing_parts(services: Services, head: list[int]) -> dict[str, str]:
    """The parts that fail their check now, with why; the log's head position is appended to
    `head` when the store answers."""

    async def read_head() -> None:
        head.append(await services.store.head_position())

    async def check_writes() -> None:
        if isinstance(services.store, WritePathCheck):
            await services.store.check_writes()

    async def ping_redis() -> None:
        await services.read_side.redis.ping()

    checks = (read_head, check_writes, ping_redis, lambda: _views_ready(services))
    results = await asyncio.gather(
        *(_check(part, check) for part, check in zip(_PARTS, checks, strict=True))
    )
    failures = {part: reason for part, reason in zip(_PARTS, results, strict=True) if reason}
    if "redis" in failures:
        failures.pop("views", None)  # unknown, not a second failure
    return failures


async def healthz(request: Request) -> Response:
    """200 while the service can answer truthfully, 503 when a part is down: the event store
    (reads, and the write path: the last append's outcome or a probe), Redis, or views that
    are being refilled after a loss. Anyone sees the status; the parts and the head position
    only staff (or everyone with HEALTH_DETAILS=open). A Kafka relay running in this process is
    a part of the details, but not of the status."""
    services: Services = request.state.services
    head: list[int] = []
    failures = await _failing_parts(services, head)
    healthy = not failures
    body: dict[str, object] = {"status": "ok" if healthy else "unavailable"}
    if await _details_allowed(request, services):
        for part in _PARTS:
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


def _json(body: dict[str, object], status_code: int) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


async def livez(request: Request) -> Response:
    """200 whenever it answers: answering at all shows the process and its event loop run."""
    return _json({"status": "ok"}, 200)


async def readyz(request: Request) -> Response:
    """200 while the service can serve (the parts /healthz checks are up), 503 when one is
    down or the process is draining (after SIGTERM, see `api.http.shutdown`). Open to anyone,
    without details (/healthz gives them to staff)."""
    drain: Drain | None = getattr(request.state, "drain", None)
    if drain is not None and drain.draining:
        return _json({"status": "draining"}, 503)
    if await _failing_parts(request.state.services, []):
        return _json({"status": "unavailable"}, 503)
    return _json({"status": "ok"}, 200)
