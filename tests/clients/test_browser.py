"""GraphiQL and the dashboard in headless Chromium, with no way out of this machine."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.clients.conftest import Offline, pay_order, place_order
from tests.e2e.gql import make_token, new_id
from tests.support.live_server import LiveServer
from tests.support.processes import ServerProcess

# CodeMirror 5 keeps its instance on the element; tests type through its API.
SET_VALUE = "(element, value) => element.CodeMirror.setValue(value)"


def _set_tool_editor(page: Page, value: str) -> None:
    """Types `value` into the editor tool shown (headers or variables)."""
    visible = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
    page.locator(visible).evaluate(SET_VALUE, value)


def _result(page: Page) -> Locator:
    return page.get_by_role("region", name="Result Window")


def _run(page: Page) -> None:
    page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()


def test_graphiql_runs_a_query_and_a_subscription_offline(
    offline: Offline, server: LiveServer, staff_token: str, api: httpx.Client
) -> None:
    order_id = new_id()
    place_order(api, order_id, price="4.00", qty=1)
    page = offline.context.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(f"{server.url}/graphql")
    expect(page.locator(".graphiql-container")).to_be_visible()
    tabs = page.locator(".graphiql-tab")
    expect(tabs).to_have_count(3)
    for name in ("PlaceOrder", "Orders", "OrderUpdated"):
        expect(page.locator(".graphiql-tab", has_text=name)).to_have_count(1)

    page.locator(".graphiql-tab", has_text="Orders").click()
    # Run only once the tab is the active one: before, GraphiQL may still send the previous
    # tab's document with this tab's operation name (the server answers "Unknown operation").
    expect(page.locator(".graphiql-tab-active", has_text="Orders")).to_have_count(1)
    headers = page.get_by_role("region", name="Headers")
    expect(headers).to_contain_text('"Authorization": "Bearer "')
    _set_tool_editor(page, f'{{"Authorization": "Bearer {staff_token}"}}')
    _run(page)
    expect(_result(page)).to_contain_text(order_id)
    expect(_result(page)).to_contain_text('"edges"')

    page.locator(".graphiql-tab", has_text="OrderUpdated").click()
    expect(page.locator(".graphiql-tab-active", has_text="OrderUpdated")).to_have_count(1)
    page.get_by_role("button", name="Variables").click()
    _set_tool_editor(page, f'{{"id": "{order_id}"}}')
    _run(page)  # this tab's Authorization is blank: the token typed in the other one serves
    expect(_result(page)).to_contain_text('"PENDING"')
    pay_order(api, order_id, "4.00")
    expect(_result(page)).to_contain_text('"PAID"')

    assert offline.blocked == [], f"the page tried to leave the machine: {offline.blocked}"
    assert sockets, "the subscription did not use a websocket"
    assert all(url.startswith(server.ws_url.rsplit("/", 1)[0]) for url in sockets), sockets


def test_dashboard_shows_orders_live_and_their_history(
    offline: Offline, server: LiveServer, staff_token: str, api: httpx.Client, tmp_path: Path
) -> None:
    page = offline.context.new_page()
    page.goto(f"{server.url}/dashboard")
    page.locator("#token").fill(staff_token)
    page.locator("#login button").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#total-orders")).to_be_visible()
    expect(page.locator("tr.projection[data-name='orders']")).to_be_visible()

    order_id = new_id()
    place_order(api, order_id, price="12.50", qty=2)
    placed = time.monotonic()
    row = page.locator(f"tr.order[data-order-id='{order_id}']")
    expect(row).to_be_visible(timeout=1000)
    shown_after = time.monotonic() - placed
    expect(row).to_have_attribute("data-status", "PENDING")

    pay_order(api, order_id, "25.00")
    expect(row).to_have_attribute("data-status", "PAID", timeout=1000)
    paid_count = page.locator("[data-testid='count-PAID']")
    expect(paid_count).not_to_have_text("0")

    row.click()
    events = page.locator("#events li.event")
    expect(events).to_have_count(2)
    expect(events.nth(0)).to_have_attribute("data-type", "OrderPlaced")
    expect(events.nth(1)).to_have_attribute("data-type", "PaymentTaken")
    expect(page.locator("#detail-state")).to_have_attribute("data-status", "PAID")

    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    print(f"dashboard screenshot: {screenshot} (order shown {shown_after * 1000:.0f} ms after)")

    # The token stays in this tab: a reload opens the dashboard without asking again.
    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator(f"tr.order[data-order-id='{order_id}']")).to_be_visible()

    assert offline.blocked == [], f"the page tried to leave the machine: {offline.blocked}"


def test_dashboard_asks_again_for_a_refused_token(offline: Offline, server: LiveServer) -> None:
    page = offline.context.new_page()
    page.goto(f"{server.url}/dashboard")
    page.locator("#token").fill("not-a-token")
    page.locator("#login button").click()
    expect(page.locator("#login .error")).to_contain_text("refused")
    assert page.evaluate("() => sessionStorage.length") == 0


def test_dashboard_reconnects_when_the_service_restarts(offline: Offline, tmp_path: Path) -> None:
    secret = "restart-secret-of-32-characters-or-more"
    token = make_token(secret, sub="staff-restart", role="staff")
    first = ServerProcess(
        data_dir=tmp_path / "data", jwt_secret=secret, log_path=tmp_path / "first.log"
    )
    first.start()
    page = offline.context.new_page()
    try:
        page.goto(f"{first.url}/dashboard")
        page.locator("#token").fill(token)
        page.locator("#login button").click()
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    finally:
        assert first.stop() in (0, -2, 130), first.log_tail()
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")

    second = ServerProcess(
        data_dir=tmp_path / "data",
        jwt_secret=secret,
        log_path=tmp_path / "second.log",
        port=first.port,
    )
    second.start()
    try:
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=second.url, headers=headers, trust_env=False) as api:
            order_id = new_id()
            place_order(api, order_id)
            expect(page.locator(f"tr.order[data-order-id='{order_id}']")).to_be_visible()
    finally:
        assert second.stop() in (0, -2, 130), second.log_tail()
