"""Signing in to the dashboard and out of it, in headless Chromium, with the keyboard and the mouse
as a person uses them: Enter in the token box signs in, a customer's token is told the page is for
staff and is not kept, Sign out forgets the token."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.clients.conftest import Offline
from tests.support.live_server import LiveServer

TOKEN_KEY = "orders.dashboard.token"


def _type_token_and_press_enter(page: Page, token: str) -> None:
    page.locator("#token").click()
    page.keyboard.type(token)
    page.keyboard.press("Enter")


def _kept_token(page: Page) -> str | None:
    kept: str | None = page.evaluate(f"() => sessionStorage.getItem('{TOKEN_KEY}')")
    return kept


def test_a_customer_token_is_told_the_page_is_for_staff_and_forgotten(
    offline: Offline, server: LiveServer, tmp_path: Path
) -> None:
    page = offline.context.new_page()
    page.goto(f"{server.url}/dashboard")
    _type_token_and_press_enter(page, server.token(sub="customer-dash"))

    message = page.locator("#login-error")
    expect(message).to_contain_text("This page is for staff")
    expect(message).not_to_contain_text("[object Object]")
    expect(page.locator("#connection")).to_have_count(0)  # the dashboard never opened
    assert _kept_token(page) is None
    page.screenshot(path=str(tmp_path / "dashboard-customer.png"))
    # Still nothing kept after the page reloads: it asks again, with no message.
    page.reload()
    expect(page.locator("#token")).to_be_visible()
    expect(page.locator("#login-error")).to_have_text("")
    assert offline.blocked == []


def test_enter_signs_in_and_sign_out_forgets_the_token(
    offline: Offline, server: LiveServer, tmp_path: Path
) -> None:
    staff_token = server.token(sub="staff-dash", role="staff")
    page = offline.context.new_page()
    page.goto(f"{server.url}/dashboard")
    expect(page.locator("#token")).to_be_focused()
    _type_token_and_press_enter(page, staff_token)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#total-orders")).to_be_visible()
    assert _kept_token(page) == staff_token
    page.screenshot(path=str(tmp_path / "dashboard-signed-in.png"), full_page=True)

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#token")).to_be_visible()
    expect(page.locator("#connection")).to_have_count(0)
    assert _kept_token(page) is None
    page.reload()
    expect(page.locator("#token")).to_be_visible()  # signed out stays signed out
    assert offline.blocked == []


def test_a_refused_token_says_why_and_is_not_kept(offline: Offline, server: LiveServer) -> None:
    page = offline.context.new_page()
    page.goto(f"{server.url}/dashboard")
    _type_token_and_press_enter(page, "Bearer not-a-token")
    expect(page.locator("#login-error")).to_contain_text("The token was refused")
    assert _kept_token(page) is None
