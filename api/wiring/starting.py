"""The API while its services are still opening (a store that is down at start): it binds at
once and answers instead of refusing connections. /livez is served (the process runs), /readyz
and /healthz say 503 `starting`, GraphQL requests get the retryable UNAVAILABLE error naming the
event store, websockets are closed with 1013 (try again later); once the services are open every
request goes through with them."""

from __future__ import annotations

from typing import Final

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from api.wiring.bootstrap import Startup

UNAVAILABLE_BODY: Final = orjson.dumps(
    {
        "data": None,
        "errors": [
            {
                "message": "The event store is not available yet; retry shortly.",
                "extensions": {"code": "UNAVAILABLE", "part": "eventStore", "retryAfter": 2},
            }
        ],
    }
)
STARTING_BODY: Final = orjson.dumps({"status": "starting", "store": "unavailable"})
TRY_AGAIN_LATER: Final = 1013
"""The websocket close code for "the service is overloaded or not ready; try again later"."""


class StartingGate:
    """Puts the opened services in each request's state (`request.state.services`); answers by
    itself until they are open."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        startup: Startup | None = state.get("startup")
        services = startup.services if startup is not None else state.get("services")
        if services is not None:
            state["services"] = services
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})
            return
        if path == "/graphql":
            await _answer(send, 503, UNAVAILABLE_BODY)
        elif path in ("/readyz", "/healthz"):
            await _answer(send, 503, STARTING_BODY)
        else:
            await self.app(scope, receive, send)


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"2"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
