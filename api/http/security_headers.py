"""Security headers on every HTTP response: what a browser may load, frame and send on.

The pages (GraphiQL at /graphql, the dashboard) are bundles served from /static, with no inline
script or style, so the Content-Security-Policy allows this origin alone:

- scripts, styles, connections (HTTP and the websocket on the same host and port: CSP's 'self'
  covers ws:// and wss:// there) and everything else from 'self';
- images and fonts also from `data:` URLs, which the bundles inline (esbuild's dataurl loader
  for GraphiQL's icons and fonts);
- no plugins (`object-src 'none'`), no `<base>` (`base-uri 'none'`), forms posting only here;
- `frame-ancestors 'none'` (and X-Frame-Options DENY for browsers without CSP 2): no page of the
  service loads inside another site's frame, so it cannot be clickjacked.

Without a web build GraphiQL is strawberry's page from a public CDN with inline scripts; only
then (`cdn_fallback`) the policy also allows that CDN and inline code.

X-Content-Type-Options nosniff keeps a browser from running a response as another type than the
one sent; Referrer-Policy no-referrer keeps the URLs of the service's pages out of other sites'
logs. A response that already carries one of these headers keeps its own.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

STRICT_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
"""The Content-Security-Policy of every response when the pages are built."""

CDN = "https://unpkg.com"
CDN_FALLBACK_POLICY = "; ".join(
    (
        "default-src 'self'",
        f"script-src 'self' 'unsafe-inline' {CDN}",
        f"style-src 'self' 'unsafe-inline' {CDN}",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
"""Only without a web build: strawberry's GraphiQL page loads from the CDN, with inline code."""


def security_headers(policy: str) -> list[tuple[bytes, bytes]]:
    """The headers every response gets under the Content-Security-Policy `policy`."""
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (pages, /graphql, /healthz, /static,
    errors), keeping any a response set itself."""

    def __init__(self, app: ASGIApp, *, cdn_fallback: bool = False) -> None:
        self.app = app
        self._headers = security_headers(CDN_FALLBACK_POLICY if cdn_fallback else STRICT_POLICY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in self._headers if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
