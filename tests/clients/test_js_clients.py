"""Apollo Client and urql, set up as README "Clients" shows (tests/clients/js/*-client.mjs), in
Node.js against the real server: a mutation's order fills the normalised cache (no second
request), a watched order follows the next mutation in place, a `status: PENDING` live list drops
an order once it is paid, and automatic persisted queries miss once and then hit. And Apollo's
allow-list: a manifest generated from the app's operations, served alone (PERSISTED_QUERIES=only).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import json_lines
from tests.support.live_server import LiveServer, running_server
from tests.support.processes import REPO_ROOT

JS = REPO_ROOT / "tests" / "clients" / "js"


@pytest.fixture(scope="session")
def client_node() -> str:
    """Node.js with tests/clients/js's packages installed from its lockfile."""
    binary = shutil.which("node")
    if binary is None or not (JS / "node_modules").is_dir():
        pytest.fail(
            "Node.js or tests/clients/js/node_modules is missing: cd tests/clients/js && npm ci "
            "(scripts/test does it on first use)",
            pytrace=False,
        )
    return binary


def _run(node: str, script: str, *args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [node, str(JS / script), *args],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = json_lines(completed.stdout)
    assert completed.returncode == 0, f"{script}: {lines}\n{completed.stderr}"
    return {str(line["check"]): line for line in lines}


def _client_run(node: str, server: LiveServer, token: str, script: str) -> dict[str, Any]:
    args = [f"{server.url}/graphql", server.ws_url, token]
    if script == "urql.mjs":
        args.append(str(REPO_ROOT / "schema.graphql"))
    return _run(node, script, *args)


@pytest.mark.parametrize("script", ["apollo.mjs", "urql.mjs"])
def test_a_frontend_client_against_the_server(
    client_node: str, server: LiveServer, staff_token: str, script: str
) -> None:
    checks = _client_run(client_node, server, staff_token, script)

    order = checks["placed_order_read_from_cache"]["order"]
    assert order["status"] == "PENDING"
    assert order["version"] == 1
    assert order["total"] == "25.00"
    assert order["items"][0]["qty"] == 2
    assert checks["watched_order_updated_in_place"]["statuses"] == ["PENDING", "PAID"]
    assert checks["paid_order_left_pending_list"]["orderId"]

    requests = checks["all_requests"]["requests"]
    assert "Order" not in {request["operationName"] for request in requests}, requests

    # A new document: its hash alone (GET) misses, the document follows with its hash, and the
    # next request is the hash alone again, answered.
    miss, register, hit = checks["apq_requests"]["requests"]
    for request in (miss, register, hit):
        assert request["hash"] == miss["hash"]
    assert (miss["method"], miss["query"], miss["status"]) == ("GET", False, 400)
    assert (register["query"], register["status"]) == (True, 200)
    assert (hit["method"], hit["query"], hit["status"]) == ("GET", False, 200)
    # Mutations go by hash too (POST): each is sent with its document once, then by hash alone.
    mutations = [r for r in requests if r["operationName"] in ("PlaceOrder", "TakePayment")]
    with_document = [r["operationName"] for r in mutations if r["query"]]
    assert sorted(with_document) == ["PlaceOrder", "TakePayment"], json.dumps(mutations)
    assert all(r["method"] == "POST" for r in mutations)


def test_apollo_with_a_generated_manifest_as_the_allow_list(
    client_node: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "persisted-query-manifest.json"
    generated = _run(client_node, "apollo-allowlist.mjs", "manifest", str(manifest))
    assert {op["name"] for op in generated["manifest"]["operations"]} == {
        "AllowedStats",
        "AllowedPlaceOrder",
    }
    env = {"PERSISTED_QUERIES": "only", "PERSISTED_QUERIES_MANIFEST": str(manifest)}
    with running_server(tmp_path, env) as live:
        token = live.token(sub="staff-allowed", role="staff")
        checks = _run(
            client_node, "apollo-allowlist.mjs", "run", f"{live.url}/graphql", token, str(manifest)
        )
    ids = {op["name"]: op["id"] for op in json.loads(manifest.read_text())["operations"]}
    listed = checks["listed_by_id"]
    # Each listed operation is one request carrying its manifest id alone, answered.
    assert [
        (r["operationName"], r["query"], r["hash"], r["status"]) for r in listed["requests"]
    ] == [
        ("AllowedStats", False, ids["AllowedStats"], 200),
        ("AllowedPlaceOrder", False, ids["AllowedPlaceOrder"], 200),
    ]
    assert listed["order"]["status"] == "PENDING"
    assert checks["unlisted_refused"]["codes"] == ["QUERY_NOT_IN_SAFELIST"]
