"""`/metrics`: the Prometheus text format (`metrics.exposition`). Open on a loopback HOST (only
this machine reaches it); elsewhere staff only (401 without a valid token, 403 for a customer),
as the numbers describe every customer's traffic. Scrapers that cannot hold a token read the
same metrics on METRICS_PORT, without auth."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from api.graphql.services import Services
from api.http.auth import Unauthenticated
from api.settings.config import is_loopback
from metrics.exposition import CONTENT_TYPE, render


async def metrics_page(request: Request) -> Response:
    """The metrics, for whoever may read them here."""
    services: Services = request.state.services
    if not is_loopback(services.settings.host):
        try:
            principal = await services.authenticator.verify(request.headers.get("authorization"))
        except Unauthenticated:
            return Response(
                "a staff token is required\n",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.is_staff:
            return Response("staff only\n", status_code=403, media_type="text/plain")
    # Multi-process mode reads every process's files: off the event loop.
    body = await asyncio.to_thread(render)
    return Response(body, media_type=CONTENT_TYPE)
