"""The README's walkthrough, step by step, as a newcomer follows it on a fresh clone:
`scripts/serve` with no configuration, a token it printed, GraphiQL's PlaceOrder tab,
`orders demo` with that token, and the dashboard in a browser showing the orders."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

from tests.clients.conftest import CHROMIUM, CHROMIUM_ARGS, WEB
from tests.support.processes import REPO_ROOT, ServerProcess

READY_TOKEN = re.compile(r"event=ready_token role=(?P<role>\w+) sub=\S+ token=(?P<token>\S+)")
EXAMPLES = WEB / "src" / "examples"
DEMO_ORDERS = 12


def _printed_tokens(log: Path) -> dict[str, str]:
    """The tokens `orders serve` printed at start, by role."""
    return {m["role"]: m["token"] for m in READY_TOKEN.finditer(log.read_text())}


def test_the_readme_walkthrough_from_serve_to_dashboard(tmp_path: Path) -> None:
    # 1. `scripts/serve`, with nothing configured: JWT_SECRET unset, so it prints tokens.
    server = ServerProcess(
        command=[str(REPO_ROOT / "scripts" / "serve")],
        data_dir=tmp_path / "data",
        jwt_secret="",
        log_path=tmp_path / "serve.log",
    )
    server.start()
    try:
        tokens = _printed_tokens(server.log_path)
        assert set(tokens) == {"staff", "customer"}, server.log_tail()
        staff = tokens["staff"]

        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
            # 2. GraphiQL's page, then its PlaceOrder tab run as it is with the printed token.
            page = http.get("/graphql", headers={"Accept": "text/html"})
            assert page.status_code == 200
            assert "/static/graphiql.js" in page.text
            document = (EXAMPLES / "PlaceOrder.graphql").read_text()
            variables = json.loads((EXAMPLES / "PlaceOrder.json").read_text())
            answer = http.post(
                "/graphql",
                json={"query": document, "variables": variables, "operationName": "PlaceOrder"},
                headers={"Authorization": f"Bearer {staff}"},
            ).json()
        assert "errors" not in answer, answer
        placed = answer["data"]["placeOrder"]
        assert placed["__typename"] == "CommandAccepted", placed
        assert placed["orderId"] == variables["input"]["orderId"]

        # 3. `orders demo` with the printed token and the GraphQL URL as GraphiQL shows it; no
        # JWT_SECRET in its environment either.
        env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
        demo = subprocess.run(
            [
                str(REPO_ROOT / ".venv" / "bin" / "orders"),
                "demo",
                "--token",
                staff,
                "--url",
                f"{server.url}/graphql",
                "--count",
                str(DEMO_ORDERS),
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert demo.returncode == 0, demo.stderr
        assert re.search(rf"placeOrder\W+{DEMO_ORDERS}\b", demo.stderr), demo.stderr

        # 4. The dashboard, signed in with the same token, shows every order.
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, "--no-proxy-server"]
            )
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                context.set_default_timeout(15_000)
                dashboard = context.new_page()
                dashboard.goto(f"{server.url}/dashboard")
                dashboard.locator("#token").click()
                dashboard.keyboard.type(staff)
                dashboard.keyboard.press("Enter")
                expect(dashboard.locator("#connection")).to_have_attribute(
                    "data-state", "connected"
                )
                expect(dashboard.locator("#total-orders")).to_have_text(str(DEMO_ORDERS + 1))
                expect(dashboard.locator("tr.order")).to_have_count(DEMO_ORDERS + 1)
                expect(
                    dashboard.locator(f"tr.order[data-order-id='{placed['orderId']}']")
                ).to_be_visible()
                dashboard.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            finally:
                browser.close()
    finally:
        code = server.stop()
    assert code in (0, -2, 130), server.log_tail()
