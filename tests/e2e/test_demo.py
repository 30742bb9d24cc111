"""`orders demo` against a running server, as a newcomer runs it: with the staff token the server
printed (no JWT_SECRET on the demo's side), and the URL copied from wherever it was shown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.wiring.cli import main
from tests.support.live_server import LiveServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server on the embedded store for these tests."""
    with running_server(tmp_path_factory.mktemp("demo-server")) as live:
        yield live


@pytest.fixture(autouse=True)
def no_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The demo's own environment knows no secret (the server's is random, as `scripts/serve`'s)."""
    for name in ("JWT_SECRET", "ESDB_URL", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))


def _total_orders(server: LiveServer) -> int:
    """The number of orders placed, counted in the log (the write side: no projection lag)."""
    token = server.token(sub="staff-demo-check", role="staff")
    query = '{ events(first: 1000, types: ["OrderPlaced"]) { edges { cursor } } }'
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
        body = http.post(
            "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
        ).json()
    assert not body.get("errors"), body
    return len(body["data"]["events"]["edges"])


@pytest.mark.parametrize("suffix", ["", "/", "/graphql", "/graphql/"])
def test_the_demo_takes_a_staff_token_and_the_url_with_or_without_graphql(
    server: LiveServer, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    token = server.token(sub="staff-demo", role="staff")
    before = _total_orders(server)
    code = main(["demo", "--token", token, "--url", server.url + suffix, "--count", "3"])
    assert code == 0, capsys.readouterr().err
    assert _total_orders(server) == before + 3


def test_a_customer_token_stops_the_demo_saying_it_needs_staff(
    server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _total_orders(server)
    # Not one of the demo's customers (customer-1..40): that one may place its own orders, and
    # the demo's other workers would place one now and then before the refusal stops them.
    token = server.token(sub="customer-outside-the-demo")
    code = main(["demo", "--token", token, "--url", server.url])
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert code == 1
    assert "not a staff token" in err
    assert "orders serve` prints one at start" in err
    assert _total_orders(server) == before


def test_a_refused_token_says_so(server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--token", "not-a-token", "--url", server.url, "--count", "1"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1
    assert "the server refused the token (UNAUTHENTICATED" in err


def test_a_url_that_is_not_the_api_names_what_it_got(
    server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    token = server.token(sub="staff-demo", role="staff")
    code = main(["demo", "--token", token, "--url", f"{server.url}/nowhere", "--count", "1"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1
    assert f"{server.url}/nowhere/graphql: HTTP 404" in err


def test_without_a_token_or_a_secret_it_says_what_to_pass(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "pass --token with a staff token" in err
    assert "set JWT_SECRET" in err


def test_a_url_without_a_scheme_is_refused_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--token", "t", "--url", "127.0.0.1:8000/graphql"]) == 2
    assert "--url must be an http:// or https:// URL" in capsys.readouterr().err
