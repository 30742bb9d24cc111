"""The typed client of examples/typed-client: GraphQL Code Generator (client preset) generates its
types from schema.graphql, tsc passes on it (event payloads typed per event type, every member
handled), and the compiled client runs against the server."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.support.live_server import LiveServer
from tests.support.processes import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "typed-client"
BIN = EXAMPLE / "node_modules" / ".bin"


def _run(*command: str, timeout: float = 60) -> str:
    completed = subprocess.run(
        command, cwd=EXAMPLE, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert completed.returncode == 0, f"{command}\n{completed.stdout}\n{completed.stderr}"
    return completed.stdout


@pytest.fixture(scope="module")
def generated() -> str:
    """Runs codegen; the generated types module's text."""
    if shutil.which("node") is None or not BIN.is_dir():
        pytest.fail(
            "Node.js or examples/typed-client/node_modules is missing: cd examples/typed-client "
            "&& npm ci (scripts/test does it on first use)",
            pytrace=False,
        )
    shutil.rmtree(EXAMPLE / "src" / "gql", ignore_errors=True)
    _run(str(BIN / "graphql-codegen"), "--config", "codegen.ts")
    return (EXAMPLE / "src" / "gql" / "graphql.ts").read_text()


def test_codegen_types_event_payloads_per_event_type(generated: str) -> None:
    assert (
        "{ __typename: 'PaymentTakenData', amount: string, method: string, transactionId: string }"
        in generated
    )
    assert "{ __typename: 'OrderShippedData', trackingId: string, carrier: string }" in generated
    history = generated.split("export type OrderHistoryQuery =")[1].split("export ")[0]
    members = (
        "OrderPlacedData PaymentTakenData OrderShippedData OrderCancelledData ItemAddedData "
        "ItemRemovedData UnknownEventData"
    )
    for member in members.split():
        assert f"__typename: '{member}'" in history, member
    assert not re.search(r"\bany\b", history), history


@pytest.fixture(scope="module")
def compiled(generated: str) -> None:
    """tsc over the example: it type-checks as `tsc --noEmit` does (exiting non-zero on any type
    error) and also writes dist/, so the check and the build are one run."""
    shutil.rmtree(EXAMPLE / "dist", ignore_errors=True)
    _run(str(BIN / "tsc"))


def test_tsc_passes_on_the_typed_client(compiled: None) -> None:
    assert (EXAMPLE / "dist" / "src" / "main.js").is_file()


def test_the_typed_client_runs_against_the_server(compiled: None, server: LiveServer) -> None:
    token = server.token(sub="staff-typed", role="staff")
    output = _run("node", "dist/src/main.js", f"{server.url}/graphql", token).splitlines()
    assert output[0].startswith("placed ")
    assert output[0].endswith(": PENDING, 2 item(s), 15.00")
    assert output[1] == "paid: PAID"
    assert output[2] == "v1 placed for typed-client: 1 line(s), 15.00"
    assert output[3] == "v2 paid 15.00 by card"
