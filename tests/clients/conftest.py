"""Fixtures for the real clients: one server (embedded store), Node.js scripts using the npm
packages of `web/`, and headless Chromium (Debian's, driven by Playwright) that may reach nothing
but this machine.

Nothing here is skipped: without Node.js, `web/node_modules`, the built bundles or Chromium the
fixtures fail and say how to get them (`.ci/run` installs them all).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, Route, sync_playwright

from tests.support.live_server import LiveServer, running_server
from tests.support.processes import REPO_ROOT

WEB = REPO_ROOT / "web"
STATIC = REPO_ROOT / "api" / "static"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# As root in a container Chromium needs --no-sandbox; the others keep it from calling home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _require(condition: bool, what: str) -> None:
    if not condition:
        pytest.fail(f"{what} (`.ci/run` installs everything these tests need)", pytrace=False)


@pytest.fixture(scope="session")
def node() -> str:
    """The Node.js binary, with web/'s packages installed and the bundles built."""
    binary = shutil.which("node")
    _require(binary is not None, "Node.js is not installed: apt-get install -y nodejs npm")
    _require((WEB / "node_modules").is_dir(), "web/node_modules is missing: cd web && npm ci")
    _require((STATIC / "manifest.json").is_file(), "no web build: cd web && npm run build")
    assert binary is not None
    return binary


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real server on the embedded store, for the whole session."""
    root = tmp_path_factory.mktemp("clients-server")
    with running_server(root) as live:
        yield live


@pytest.fixture
def staff_token(server: LiveServer) -> str:
    """A staff member's token."""
    return server.token(sub="staff-clients", role="staff")


@pytest.fixture
def api(server: LiveServer, staff_token: str) -> Iterator[httpx.Client]:
    """A plain HTTP client for GraphQL requests as staff."""
    headers = {"Authorization": f"Bearer {staff_token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30, trust_env=False) as client:
        yield client


def run_node(node: str, script: str, *args: str, timeout: float = 60) -> str:
    """Runs `web/clients/SCRIPT` to its end; its stdout (it fails the test on a non-zero exit)."""
    completed = subprocess.run(
        [node, str(WEB / "clients" / script), *args],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{script} exited {completed.returncode}\n{completed.stdout}\n{completed.stderr}"
    )
    return completed.stdout


# Module scope, not session: the sync API runs an event loop in this thread while it is open, and
# the async tests of later modules need the thread without one.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver (its own browser downloads are never used)."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's headless Chromium."""
    _require(Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, "--no-proxy-server"]
    )
    yield chromium
    chromium.close()


@dataclass
class Offline:
    """A browser context that aborts every request to anywhere but this machine, noting it."""

    context: BrowserContext
    blocked: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
            return
        self.blocked.append(route.request.url)
        route.abort("internetdisconnected")


@pytest.fixture
def offline(browser: Browser) -> Iterator[Offline]:
    """A fresh context (no storage) whose pages can reach loopback addresses only."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    state = Offline(context)
    context.route("**/*", state.route)
    yield state
    context.close()


def graphql(api: httpx.Client, query: str, variables: Mapping[str, object]) -> dict[str, Any]:
    """The data of one GraphQL request that must succeed."""
    response = api.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert response.status_code == 200, body
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


PLACE = """mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { __typename ... on CommandAccepted { orderId version } }
}"""
PAY = """mutation($input: TakePaymentInput!) {
  takePayment(input: $input) { __typename ... on CommandAccepted { version } }
}"""
SHIP = """mutation($input: ShipOrderInput!) {
  shipOrder(input: $input) { __typename ... on CommandAccepted { version } }
}"""


def place_order(api: httpx.Client, order_id: str, price: str = "12.50", qty: int = 2) -> None:
    """Places an order of one line through the API."""
    line = {"productId": "book-1", "name": "A book", "price": price, "qty": qty}
    variables = {"input": {"orderId": order_id, "customerId": "c-web", "items": [line]}}
    result = graphql(api, PLACE, variables)["placeOrder"]
    assert result == {"__typename": "CommandAccepted", "orderId": order_id, "version": 1}


def pay_order(api: httpx.Client, order_id: str, amount: str) -> None:
    """Pays an order in full through the API."""
    payment = {"orderId": order_id, "amount": amount, "method": "card", "transactionId": "t-1"}
    result = graphql(api, PAY, {"input": payment})["takePayment"]
    assert result["__typename"] == "CommandAccepted", result


def ship_order(api: httpx.Client, order_id: str) -> None:
    """Ships an order through the API."""
    shipment = {"orderId": order_id, "trackingId": "TRK-1", "carrier": "DHL"}
    result = graphql(api, SHIP, {"input": shipment})["shipOrder"]
    assert result["__typename"] == "CommandAccepted", result


def json_lines(text: str) -> list[dict[str, object]]:
    """Each non-empty line of `text`, decoded."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
