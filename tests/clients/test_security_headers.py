"""The security headers on every response, and the pages working under their strict
Content-Security-Policy in headless Chromium: GraphiQL and the dashboard load and run with no CSP
violation, and the dashboard refuses to load inside another site's frame."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from playwright.sync_api import ConsoleMessage, Page, expect

from api.http.security_headers import STRICT_POLICY
from tests.clients.conftest import Offline, pay_order, place_order
from tests.e2e.gql import new_id
from tests.support.live_server import LiveServer

EXPECTED = {
    "content-security-policy": STRICT_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
SET_VALUE = "(element, value) => element.CodeMirror.setValue(value)"
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def test_every_kind_of_response_carries_the_headers(server: LiveServer, api: httpx.Client) -> None:
    static = api.get("/static/dashboard.js")
    assert static.status_code == 200
    answers = {
        "graphiql": api.get("/graphql", headers={"Accept": "text/html"}),
        "graphql": api.post("/graphql", json={"query": "{ __typename }"}),
        "healthz": api.get("/healthz"),
        "dashboard": api.get("/dashboard"),
        "static": static,
        "not found": api.get("/nowhere"),
        "too large": api.post("/graphql", content=b"x" * 2_000_000),
    }
    assert "script-src 'self';" in STRICT_POLICY
    assert "frame-ancestors 'none'" in STRICT_POLICY
    assert "unsafe-inline" not in STRICT_POLICY
    for name, answer in answers.items():
        for header, value in EXPECTED.items():
            assert answer.headers.get(header) == value, (name, header, answer.headers)
    assert answers["too large"].status_code == 413


def _watch(page: Page) -> list[str]:
    """Console lines that report a refused load (CSP violations among them)."""
    page.add_init_script(RECORD_VIOLATIONS)
    problems: list[str] = []

    def note(message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            problems.append(text)

    page.on("console", note)
    return problems


def _violations(page: Page) -> list[str]:
    found: list[str] = page.evaluate("() => window.__cspViolations")
    return found


def test_graphiql_runs_under_the_policy_without_violations(
    offline: Offline, server: LiveServer, staff_token: str, api: httpx.Client
) -> None:
    order_id = new_id()
    place_order(api, order_id, price="3.00", qty=1)
    page = offline.context.new_page()
    console = _watch(page)
    page.goto(f"{server.url}/graphql")
    expect(page.locator(".graphiql-container")).to_be_visible()
    page.locator(".graphiql-tab", has_text="OrderUpdated").click()
    expect(page.locator(".graphiql-tab-active", has_text="OrderUpdated")).to_have_count(1)
    page.get_by_role("button", name="Headers").click()
    visible = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
    page.locator(visible).evaluate(SET_VALUE, f'{{"Authorization": "Bearer {staff_token}"}}')
    page.get_by_role("button", name="Variables").click()
    page.locator(visible).evaluate(SET_VALUE, f'{{"id": "{order_id}"}}')
    page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    result = page.get_by_role("region", name="Result Window")
    expect(result).to_contain_text('"PENDING"')  # over the websocket: connect-src 'self'
    pay_order(api, order_id, "3.00")
    expect(result).to_contain_text('"PAID"')
    assert _violations(page) == []
    assert console == []
    assert offline.blocked == []


def test_the_dashboard_runs_under_the_policy_without_violations(
    offline: Offline, server: LiveServer, staff_token: str, api: httpx.Client
) -> None:
    page = offline.context.new_page()
    console = _watch(page)
    page.goto(f"{server.url}/dashboard")
    page.locator("#token").fill(staff_token)
    page.locator("#login button").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    order_id = new_id()
    place_order(api, order_id)
    row = page.locator(f"tr.order[data-order-id='{order_id}']")
    expect(row).to_be_visible()
    row.click()
    expect(page.locator("#events li.event")).to_have_count(1)
    assert page.evaluate("() => getComputedStyle(document.body).margin") != "8px"  # its CSS
    assert _violations(page) == []
    assert console == []


@contextmanager
def _foreign_site(html: str) -> Iterator[str]:
    """Another origin on this machine (its own port) serving `html`: a site that frames ours."""
    body = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test's output stays quiet

    site = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{site.server_address[1]}/"
    finally:
        site.shutdown()
        site.server_close()
        thread.join()


def test_the_dashboard_refuses_to_load_in_a_foreign_frame(
    offline: Offline, server: LiveServer
) -> None:
    page = offline.context.new_page()
    html = f'<!doctype html><title>not ours</title><iframe src="{server.url}/dashboard"></iframe>'
    with _foreign_site(html) as foreign:
        page.goto(foreign, wait_until="load")
        (frame,) = page.main_frame.child_frames
        # Chromium shows its error page in the frame, and nothing of the dashboard ran there.
        # The frame (another site: its own process) may report that navigation after the page's
        # load event: its URL read '' at first on a loaded machine.
        deadline = time.monotonic() + 10
        while not frame.url.startswith("chrome-error://") and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        assert frame.url.startswith("chrome-error://"), frame.url
        assert frame.locator("#token").count() == 0
        assert frame.locator("#dashboard").count() == 0
