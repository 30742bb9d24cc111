"""Who may introspect (`INTROSPECTION`): staff by default, everyone with `all`, nobody with
`off`; customers get a clear FORBIDDEN error, the anonymous nothing at all."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.gql import GraphQLClient, error_codes
from tests.e2e.ws import graphql_ws
from tests.support.live_server import LiveServer, running_server

INTROSPECT = "{ __schema { queryType { name } } }"
TYPE = '{ __type(name: "Order") { name } }'
ROLES = ("staff", "customer")


@pytest.fixture(scope="module", params=["default", "staff", "all", "off"])
def policy_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, LiveServer]]:
    """A server per policy (`default`: INTROSPECTION unset)."""
    policy: str = request.param
    env = {} if policy == "default" else {"INTROSPECTION": policy}
    with running_server(tmp_path_factory.mktemp(f"introspection-{policy}"), env) as server:
        yield policy, server


def _allowed(policy: str, role: str) -> bool:
    return policy == "all" or (policy in ("default", "staff") and role == "staff")


@pytest.mark.parametrize("role", ROLES)
async def test_introspection_follows_the_policy_over_http_and_websockets(
    policy_server: tuple[str, LiveServer], role: str
) -> None:
    policy, server = policy_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0, trust_env=False) as http:
        gql = GraphQLClient(
            http, server.token(sub="c-1" if role == "customer" else "s-1", role=role)
        )
        for document in (INTROSPECT, TYPE):
            result = await gql.execute(document)
            if _allowed(policy, role):
                assert not result.get("errors"), result
                assert result["data"]
            else:
                assert error_codes(result) == ["FORBIDDEN"], result
                assert "introspection" in result["errors"][0]["message"].lower()
                assert result.get("data") is None
        typename = await gql.data("{ __typename }")  # not introspection: always answered
        assert typename == {"__typename": "Query"}
        anonymous = await gql.post(INTROSPECT, token=None)
        assert anonymous.status_code == 401
    async with graphql_ws(server.ws_url, gql.token) as ws:
        sub = await ws.subscribe(INTROSPECT)
        message = await sub.message()
    payload = message.payload
    if _allowed(policy, role):
        assert payload["data"]["__schema"]["queryType"]["name"] == "Query", message
    else:
        errors = payload if isinstance(payload, list) else payload.get("errors", [payload])
        assert [(e.get("extensions") or {}).get("code") for e in errors] == ["FORBIDDEN"]
