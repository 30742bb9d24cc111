"""GraphiQL as a person meets it: a fresh browser, the page as it loads, a token typed into the
headers editor, and the Run button pressed on each example tab without changing anything.

Nothing here drives GraphiQL through its code: the checks read what the window shows (sizes,
text) and act with the mouse and keyboard. The screenshots land in the test's tmp folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.clients.conftest import WEB, Offline
from tests.support.live_server import LiveServer

EXAMPLES = WEB / "src" / "examples"
TABS = ("PlaceOrder", "Orders", "OrderUpdated")
VIEWPORT_HEIGHT = 900

# Violations of the Content-Security-Policy the service sends, as the browser reports them: the
# page loads its own scripts, styles, fonts and images only, none inline.
COLLECT_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def _result(page: Page) -> Locator:
    return page.get_by_role("region", name="Result Window")


def _headers_editor(page: Page) -> Locator:
    """The headers editor as shown (the tools pane holds the variables editor too, hidden)."""
    return page.get_by_role("region", name="Headers").locator(
        ".graphiql-editor:not(.hidden) .CodeMirror"
    )


def _height(locator: Locator) -> float:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not shown"
    return box["height"]


def _tab_button(page: Page, name: str, *, active: bool = False) -> Locator:
    """The button naming the tab `name`, exactly (PlaceOrder's must not pass for Orders)."""
    tab = ".graphiql-tab-active" if active else ".graphiql-tab"
    return page.locator(f"{tab} .graphiql-tab-button", has_text=re.compile(f"^{name}$"))


def _run_tab(page: Page, name: str) -> None:
    _tab_button(page, name).click()
    # Run only once the tab is the active one: before, GraphiQL may still hold the previous tab.
    expect(_tab_button(page, name, active=True)).to_have_count(1)
    page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()


def _shot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"graphiql-{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, f"{path} looks blank"
    print(f"screenshot: {path}")
    return path


def test_graphiql_works_on_first_load_with_a_typed_token(
    offline: Offline, server: LiveServer, tmp_path: Path
) -> None:
    staff_token = server.token(sub="staff-graphiql", role="staff")
    offline.context.add_init_script(COLLECT_CSP_VIOLATIONS)
    page = offline.context.new_page()
    assert page.viewport_size == {"width": 1400, "height": VIEWPORT_HEIGHT}
    page.goto(f"{server.url}/graphql")
    expect(page.locator(".graphiql-container")).to_be_visible()
    expect(page.locator(".graphiql-tab")).to_have_count(len(TABS))
    for name in TABS:
        expect(_tab_button(page, name)).to_have_count(1)
    # The icons are named for people and screen readers ("close icon", not a minified name).
    expect(page.get_by_role("button", name="Close Tab").first.locator("title")).to_have_text(
        "close icon"
    )
    page.wait_for_load_state("networkidle")

    # The editors fill the window, and the headers editor is open with room to read it.
    editors = page.locator(".graphiql-editors")
    query_editor = page.get_by_role("region", name="Query Editor")
    assert _height(editors) >= 0.8 * VIEWPORT_HEIGHT, _height(editors)
    assert _height(query_editor) >= 0.5 * VIEWPORT_HEIGHT, _height(query_editor)
    assert _height(_headers_editor(page)) >= 120, _height(_headers_editor(page))
    authorization_line = _headers_editor(page).locator(".CodeMirror-line").nth(1)
    expect(authorization_line).to_be_visible()
    expect(authorization_line).to_have_text('"Authorization": "Bearer "')
    # Nothing ran yet, so nothing failed: no 401 from an introspection without a token.
    expect(_result(page)).not_to_contain_text("UNAUTHENTICATED")
    expect(_result(page)).not_to_contain_text("error", ignore_case=True)
    expect(page.locator(".orders-schema-note")).to_contain_text("Paste a token")
    # The first tab opens with its variables, as the other tabs do.
    page.get_by_role("button", name="Variables").click()
    variables = page.get_by_role("region", name="Variables").locator(
        ".graphiql-editor:not(.hidden) .CodeMirror"
    )
    expect(variables).to_contain_text('"customerId": "customer-1"')
    expect(variables).to_contain_text('"idempotencyKey"')
    page.get_by_role("button", name="Headers").click()
    _shot(page, tmp_path, "1-first-load")

    # A person clicks behind "Bearer " and types (pastes) the token.
    authorization_line.click()
    page.keyboard.press("End")
    page.keyboard.press("ArrowLeft")  # before the closing quote
    page.keyboard.type(staff_token)
    expect(authorization_line).to_contain_text(staff_token[-12:])
    # The schema follows the token by itself: Docs work with no manual re-fetch.
    expect(page.locator(".orders-schema-note")).to_have_attribute("data-state", "loaded")
    page.get_by_role("button", name="Show Documentation Explorer").click()
    docs = page.locator(".graphiql-doc-explorer")
    expect(docs).to_contain_text("Mutation")
    expect(docs).not_to_contain_text("Error fetching schema")
    page.get_by_role("button", name="Hide Documentation Explorer").click()
    _shot(page, tmp_path, "2-after-token")

    placed = json.loads((EXAMPLES / "PlaceOrder.json").read_text())["input"]["orderId"]
    _run_tab(page, "PlaceOrder")
    expect(_result(page)).to_contain_text('"CommandAccepted"')
    expect(_result(page)).to_contain_text(f'"orderId": "{placed}"')
    expect(_result(page)).not_to_contain_text('"errors"')
    _shot(page, tmp_path, "3-after-place-order")

    _run_tab(page, "Orders")
    expect(_result(page)).to_contain_text(f'"id": "{placed}"')
    expect(_result(page)).not_to_contain_text('"errors"')
    # The token typed in the first tab is shown (and sent) in this one too.
    expect(_headers_editor(page)).to_contain_text(staff_token[-12:])

    _run_tab(page, "OrderUpdated")
    expect(_result(page)).to_contain_text(f'"id": "{placed}"')
    expect(_result(page)).to_contain_text('"status": "PENDING"')
    expect(_result(page)).not_to_contain_text('"errors"')
    _shot(page, tmp_path, "4-order-updated")

    assert offline.blocked == [], f"the page tried to leave the machine: {offline.blocked}"
    assert page.evaluate("window.cspViolations") == []


def test_a_customer_token_runs_the_examples_and_says_why_there_are_no_docs(
    offline: Offline, server: LiveServer
) -> None:
    page = offline.context.new_page()
    page.goto(f"{server.url}/graphql")
    authorization_line = _headers_editor(page).locator(".CodeMirror-line").nth(1)
    authorization_line.click()
    page.keyboard.press("End")
    page.keyboard.press("ArrowLeft")
    page.keyboard.type(server.token(sub="customer-1"))
    # Introspection is staff's (INTROSPECTION=staff): the page says so beside the result, and
    # the result pane stays the customer's own.
    note = page.locator(".orders-schema-note")
    expect(note).to_have_attribute("data-state", "refused")
    expect(note).to_contain_text("FORBIDDEN")
    _run_tab(page, "PlaceOrder")
    expect(_result(page)).to_contain_text('"CommandAccepted"')
    expect(_result(page)).not_to_contain_text("FORBIDDEN")
