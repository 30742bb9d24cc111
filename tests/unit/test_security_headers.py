"""The security-headers middleware on its own: what it adds, what it leaves alone."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from api.http.security_headers import (
    CDN,
    CDN_FALLBACK_POLICY,
    STRICT_POLICY,
    SecurityHeadersMiddleware,
)


async def plain(request: Request) -> Response:
    return PlainTextResponse("ok")


async def own_policy(request: Request) -> Response:
    return PlainTextResponse("ok", headers={"Content-Security-Policy": "sandbox"})


def _client(*, cdn_fallback: bool) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/plain", plain), Route("/own", own_policy)])
    wrapped = SecurityHeadersMiddleware(app, cdn_fallback=cdn_fallback)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://t")


async def test_the_strict_policy_allows_this_origin_alone() -> None:
    async with _client(cdn_fallback=False) as client:
        answer = await client.get("/plain")
    assert answer.headers["content-security-policy"] == STRICT_POLICY
    assert "unsafe-inline" not in STRICT_POLICY
    assert "unsafe-eval" not in STRICT_POLICY
    assert CDN not in STRICT_POLICY
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


async def test_a_response_keeps_a_policy_of_its_own() -> None:
    async with _client(cdn_fallback=False) as client:
        answer = await client.get("/own")
    assert answer.headers.get_list("content-security-policy") == ["sandbox"]
    assert answer.headers["x-frame-options"] == "DENY"


async def test_without_a_web_build_the_cdn_page_may_load() -> None:
    async with _client(cdn_fallback=True) as client:
        answer = await client.get("/plain")
    assert answer.headers["content-security-policy"] == CDN_FALLBACK_POLICY
    assert f"script-src 'self' 'unsafe-inline' {CDN}" in CDN_FALLBACK_POLICY
    assert "frame-ancestors 'none'" in CDN_FALLBACK_POLICY
