"""The fuzz run: generated queries and mutations (hypothesis-graphql over schema.graphql, valid
and invalid ones) against the real server, as a customer and as staff, with a fixed seed and a
bounded number of examples. Fails on any 5xx, any leaked internals (tracebacks, file paths,
exception class names, a masked "Unexpected error", an ERROR in the server's log) and any write
from a rejected command (the log's head unchanged after a mutation that accepted nothing)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries

from tests.e2e.gql import JSON, PLACE, item
from tests.security.live import LogWatch, secured
from tests.support.live_server import LiveServer

__all__ = ["secured"]

SDL = (Path(__file__).resolve().parents[2] / "schema.graphql").read_text(encoding="utf-8")
EXAMPLES = 60
"""Examples per run: with four runs, the whole module stays well under a minute."""
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # a fixed seed: the same documents every run
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CUSTOMER = "fuzz-customer"

SCALARS = {
    "DateTime": st.one_of(
        st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.isoformat()),
        st.text(max_size=30),
    ).map(nodes.String),
    "Decimal": st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
        st.text(max_size=12),
    ).map(nodes.String),
    "JSON": st.text(max_size=20).map(nodes.String),
}

LEAKS = [
    re.compile(r"Traceback"),
    re.compile(r'File "'),
    re.compile(r"\.py\b"),
    re.compile(r"site-packages|/work/|/tmp/|/home/"),
    re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)*(?:Error|Exception)\b"),
    re.compile(r"Unexpected error", re.IGNORECASE),
    re.compile(r"INTERNAL_SERVER_ERROR"),
]

HEAD = """query($after: String) { events(after: $after, first: 1000) {
    edges { cursor } pageInfo { hasNextPage endCursor } } }"""


class Fuzzer:
    """Posts documents as one caller and checks every answer; tracks the log's head as staff."""

    def __init__(self, server: LiveServer, role: str) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=30.0, trust_env=False)
        sub = CUSTOMER if role == "customer" else "fuzz-staff"
        self.headers = {"Authorization": f"Bearer {server.token(sub=sub, role=role)}"}
        staff = server.token(sub="fuzz-staff", role="staff")
        self.staff_headers = {"Authorization": f"Bearer {staff}"}
        self.head: str | None = None
        self.head = self._newest_after(None)

    def _newest_after(self, after: str | None) -> str | None:
        newest = after
        for _ in range(1000):
            response = self.http.post(
                "/graphql",
                json={"query": HEAD, "variables": {"after": after}},
                headers=self.staff_headers,
            )
            page = response.json()["data"]["events"]
            if page["edges"]:
                newest = page["edges"][-1]["cursor"]
            if not page["pageInfo"]["hasNextPage"]:
                return newest
            after = page["pageInfo"]["endCursor"]
        raise AssertionError("the log did not end within 1000 pages")

    def post(self, document: str, variables: JSON | None = None) -> JSON | None:
        """Post one document and check the answer; the decoded body, when JSON."""
        body: JSON = {"query": document}
        if variables is not None:
            body["variables"] = variables
        response = self.http.post("/graphql", json=body, headers=self.headers)
        assert response.status_code < 500, f"{response.status_code} for {document!r}"
        for leak in LEAKS:
            found = leak.search(response.text)
            assert found is None, (
                f"leaked {found.group()!r} for {document!r}: {response.text[:500]}"
            )
        if not response.headers.get("content-type", "").startswith("application/"):
            return None
        result: JSON = response.json()
        return result

    def mutate(self, document: str) -> None:
        """Post a mutation; when it accepted nothing, nothing may have been written."""
        result = self.post(document)
        accepted = result is not None and "CommandAccepted" in str(result.get("data"))
        newest = self._newest_after(self.head)
        if not accepted:
            assert newest == self.head, f"a rejected command wrote to the log: {document!r}"
        self.head = newest

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()


@pytest.fixture(scope="module")
def seeded(secured: LiveServer) -> LiveServer:
    """The server with a few of the fuzzing customer's orders, so ids and pages are not empty."""
    staff = {"Authorization": f"Bearer {secured.token(sub='fuzz-staff', role='staff')}"}
    with httpx.Client(base_url=secured.url, timeout=30.0, trust_env=False) as http:
        for n in range(3):
            payload = {"orderId": f"fuzz-{n}", "customerId": CUSTOMER, "items": [item()]}
            response = http.post(
                "/graphql", json={"query": PLACE, "variables": {"input": payload}}, headers=staff
            )
            assert "CommandAccepted" in response.text, response.text
    return secured


@pytest.fixture(scope="module", params=["customer", "staff"])
def fuzzer(request: pytest.FixtureRequest, seeded: LiveServer) -> Iterator[Fuzzer]:
    """A fuzzer acting as a customer, then as staff; the server's log stays free of errors."""
    log = LogWatch(seeded)
    caller = Fuzzer(seeded, request.param)
    try:
        yield caller
    finally:
        caller.close()
    text = log.text()
    assert "level=ERROR" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]


@FUZZ
@given(document=queries(SDL, custom_scalars=SCALARS))
def test_generated_queries(fuzzer: Fuzzer, document: str) -> None:
    fuzzer.post(document)


@FUZZ
@given(document=queries(SDL, custom_scalars=SCALARS, mode=Mode.NEGATIVE))
def test_generated_invalid_queries(fuzzer: Fuzzer, document: str) -> None:
    result = fuzzer.post(document)
    assert result is None or result.get("errors"), f"an invalid document ran: {document!r}"


@FUZZ
@given(document=mutations(SDL, custom_scalars=SCALARS))
def test_generated_mutations(fuzzer: Fuzzer, document: str) -> None:
    fuzzer.mutate(document)


@FUZZ
@given(document=mutations(SDL, custom_scalars=SCALARS, mode=Mode.NEGATIVE))
def test_generated_invalid_mutations(fuzzer: Fuzzer, document: str) -> None:
    fuzzer.mutate(document)
