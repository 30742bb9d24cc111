"""The dashboard's charts in headless Chromium against a real server: commands per second,
projection lag and live subscribers, sampled by the page from /metrics with its staff token.

The servers here listen on HOST=0.0.0.0, where /metrics is staff only, so the charts filling up
shows the page sends its token; the page's own sockets and an order it opens move the
subscriber chart; a stopped service is said on the charts and a restarted one fills them again.
The page's reader of the text format is held to prometheus-client's own parser.
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from prometheus_client.parser import text_string_to_metric_families

from tests.clients.conftest import PLACE, WEB, Offline, place_order
from tests.e2e.gql import make_token, new_id
from tests.support.live_server import LiveServer, running_server
from tests.support.processes import ServerProcess

COLLECT_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""
OFF_LOOPBACK = {"HOST": "0.0.0.0"}  # /metrics then asks for a staff token


@pytest.fixture
def staff_only_metrics(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of this test's own (its subscriber counts are this test's alone)."""
    with running_server(tmp_path, OFF_LOOPBACK) as server:
        yield server


def _sign_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/dashboard")
    page.locator("#token").fill(token)
    page.locator("#login button").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")


def _current(page: Page, chart: str, series: int) -> float | None:
    """The value a chart shows as current for one series (None: none yet)."""
    value = page.locator(f"#{chart} .series[data-series='{series}'] .current")
    raw = value.get_attribute("data-value")
    return float(raw) if raw else None


def _save(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    print(f"screenshot: {path}")


_SHOWS_ABOVE_ZERO = """([chart, series]) => Number(document.querySelector(
    `#${chart} .series[data-series='${series}'] .current`).dataset.value) > 0"""


def _place(api: httpx.Client, order_id: str) -> str:
    """Places an order of one line; its id (the command may be refused: that is not checked)."""
    line = {"productId": "book-1", "name": "A book", "price": "12.50", "qty": 2}
    variables = {"input": {"orderId": order_id, "customerId": "c-web", "items": [line]}}
    response = api.post("/graphql", json={"query": PLACE, "variables": variables})
    assert response.status_code == 200, response.text
    return order_id


@contextmanager
def _steadily(
    server: LiveServer, token: str, action: Callable[[httpx.Client], object]
) -> Iterator[None]:
    """Runs `action` every 50 ms in a thread of its own while the block runs."""
    done = threading.Event()
    failures: list[BaseException] = []

    def repeat() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30, trust_env=False) as api:
            while not done.wait(0.05):
                try:
                    action(api)
                except BaseException as error:  # handed to the test below, which fails with it
                    failures.append(error)
                    return

    worker = threading.Thread(target=repeat)
    worker.start()
    try:
        yield
    finally:
        done.set()
        worker.join()
    assert not failures, failures


def test_the_charts_show_commands_per_second_lag_and_subscribers(
    offline: Offline, staff_only_metrics: LiveServer, tmp_path: Path
) -> None:
    server = staff_only_metrics
    token = server.token(sub="staff-charts", role="staff")
    with httpx.Client(base_url=server.url, trust_env=False) as anonymous:
        assert anonymous.get("/metrics").status_code == 401  # the page must send its token
    offline.context.add_init_script(COLLECT_CSP_VIOLATIONS)
    page = offline.context.new_page()
    _sign_in(page, server.url, token)

    # The page's own socket holds ordersUpdated and dashboardStats.
    subscribers = page.locator("#chart-subscribers .series[data-series='0'] .current")
    expect(subscribers).to_have_text("1")
    subscriptions = page.locator("#chart-subscribers .series[data-series='1'] .current")
    expect(subscriptions).to_have_text("2")
    expect(page.locator("#chart-lag .series[data-series='0'] .current")).to_have_text("0")
    expect(page.locator("#lag-seconds")).to_contain_text("0.0 s old")

    # Orders placed steadily until a sample sees them: commands/s above zero.
    placed: list[str] = []
    with _steadily(server, token, lambda api: placed.append(_place(api, new_id()))):
        expect(page.locator("#chart-commands path.line[data-series='0']")).to_have_count(1)
        page.wait_for_function(_SHOWS_ABOVE_ZERO, arg=["chart-commands", 0], timeout=15_000)
    rate = _current(page, "chart-commands", 0)
    assert rate is not None
    assert rate > 0
    assert _current(page, "chart-commands", 1) == 0  # none refused or failed
    assert placed

    # The same order placed again is refused (already exists): the second line moves.
    with _steadily(server, token, lambda api: _place(api, placed[0])):
        page.wait_for_function(_SHOWS_ABOVE_ZERO, arg=["chart-commands", 1], timeout=15_000)

    # Opening an order subscribes to its events and its view: two more subscriptions.
    page.locator(f"tr.order[data-order-id='{placed[-1]}']").click()
    expect(page.locator("#events li.event")).to_have_count(1)
    expect(subscriptions).to_have_text("4")
    expect(subscribers).to_have_text("1")
    for chart in ("chart-commands", "chart-lag", "chart-subscribers"):
        expect(page.locator(f"#{chart} svg text.tick.x").last).to_have_text("now")
        expect(page.locator(f"#{chart} .chart-note")).to_be_hidden()
    expect(page.locator("#charts")).not_to_contain_text("[object Object]")
    _save(page, tmp_path, "dashboard-charts.png")
    print(f"commands/s shown: {rate:.1f} after {len(placed)} orders")

    assert page.evaluate("window.cspViolations") == []
    assert offline.blocked == [], f"the page tried to leave the machine: {offline.blocked}"


def test_the_charts_say_when_the_service_is_gone_and_fill_again_when_it_returns(
    offline: Offline, tmp_path: Path
) -> None:
    secret = "charts-secret-of-32-characters-or-more"
    token = make_token(secret, sub="staff-charts-restart", role="staff")
    first = ServerProcess(
        data_dir=tmp_path / "data",
        jwt_secret=secret,
        log_path=tmp_path / "first.log",
        env=OFF_LOOPBACK,
    )
    first.start()
    page = offline.context.new_page()
    notes = page.locator(".line-chart .chart-note")
    try:
        _sign_in(page, first.url, token)
        expect(page.locator("#chart-subscribers .series[data-series='0'] .current")).to_have_text(
            "1"
        )
        expect(notes.first).to_be_hidden()
    finally:
        assert first.stop() in (0, -2, 130), first.log_tail()

    expect(notes).to_have_count(3)
    for index in range(3):
        expect(notes.nth(index)).to_be_visible()
        expect(notes.nth(index)).to_contain_text("cannot be reached")
    unknown = page.locator("#chart-subscribers .series[data-series='0'] .current")
    expect(unknown).to_have_attribute("data-value", "")  # no current value while it is gone
    expect(page.locator("#charts")).not_to_contain_text("[object Object]")
    _save(page, tmp_path, "dashboard-charts-service-gone.png")

    second = ServerProcess(
        data_dir=tmp_path / "data",
        jwt_secret=secret,
        log_path=tmp_path / "second.log",
        port=first.port,
        env=OFF_LOOPBACK,
    )
    second.start()
    try:
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
        for index in range(3):
            expect(notes.nth(index)).to_be_hidden()
        expect(page.locator("#chart-subscribers .series[data-series='0'] .current")).to_have_text(
            "1"
        )
    finally:
        assert second.stop() in (0, -2, 130), second.log_tail()
    assert offline.blocked == [], f"the page tried to leave the machine: {offline.blocked}"


# Lines the service does not write today but the format allows: escapes, a timestamp, NaN, +Inf.
AWKWARD_LINES = r"""
orders_awkward_total{path="a\\b",quote="say \"hi\", {x}",line="one\ntwo"} 7 1700000000000
orders_awkward_total{path="",quote="",line=""} NaN
orders_awkward_total{path="inf",quote="",line=""} +Inf
"""
PARSE_WITH_THE_PAGES_CODE = """
import { readFileSync } from "node:fs";
import { parseMetrics } from "%s";
const samples = parseMetrics(readFileSync(process.argv[2], "utf8"));
console.log(JSON.stringify(samples.map((s) => [s.name, s.labels, String(s.value)])));
"""


def _comparable(value: float) -> float | str:
    """A sample's value, with NaN made equal to itself."""
    return "NaN" if math.isnan(value) else value


def test_the_pages_parser_reads_metrics_as_prometheus_client_does(
    node: str, server: LiveServer, api: httpx.Client, tmp_path: Path
) -> None:
    place_order(api, new_id())
    exposition = httpx.get(f"{server.url}/metrics", trust_env=False).text + AWKWARD_LINES
    assert "orders_commands_total{" in exposition
    metrics = tmp_path / "metrics.txt"
    metrics.write_text(exposition)
    script = tmp_path / "parse.ts"
    script.write_text(PARSE_WITH_THE_PAGES_CODE % (WEB / "src" / "prometheus.ts"))
    bundle = tmp_path / "parse.mjs"
    subprocess.run(
        [str(WEB / "node_modules" / ".bin" / "esbuild"), str(script), "--bundle",
         "--platform=node", "--format=esm", f"--outfile={bundle}", "--log-level=warning"],
        check=True,
    )  # fmt: skip
    read = subprocess.run(
        [node, str(bundle), str(metrics)], capture_output=True, text=True, check=True
    )
    # JavaScript writes NaN and Infinity as such; Python's float() reads both.
    pages = [
        (name, labels, _comparable(float(value))) for name, labels, value in json.loads(read.stdout)
    ]

    expected = [
        (sample.name, sample.labels, _comparable(float(sample.value)))
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    ]
    assert pages == expected
    awkward = [s for s in pages if s[0] == "orders_awkward_total"]
    assert awkward[0] == (
        "orders_awkward_total",
        {"path": "a\\b", "quote": 'say "hi", {x}', "line": "one\ntwo"},
        7.0,
    )
    assert awkward[1][2] == "NaN"
    assert awkward[2][2] == math.inf
