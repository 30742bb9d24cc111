"""graphql-http's GraphQL-over-HTTP audit (the npm package's `auditServer`) against the server."""

from __future__ import annotations

import json

from tests.clients.conftest import run_node
from tests.support.live_server import LiveServer


def test_the_audit_passes_with_no_errors_and_no_warnings(
    node: str, server: LiveServer, staff_token: str
) -> None:
    summary = json.loads(run_node(node, "audit.mjs", f"{server.url}/graphql", staff_token))
    assert summary["results"] == [], "audit findings:\n" + json.dumps(summary["results"], indent=2)
    assert (summary["error"], summary["warn"]) == (0, 0)
    assert summary["ok"] >= 50
