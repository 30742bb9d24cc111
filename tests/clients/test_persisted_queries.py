"""Apollo's automatic persisted queries as its clients speak them, over GET, POST and both
websocket protocols; `PERSISTED_QUERIES=only` with a manifest as an allow-list, and `off`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from api.settings.config import Settings, SettingsError
from tests.clients.conftest import place_order
from tests.e2e.gql import new_id
from tests.support.live_server import LiveServer, running_server

JSON = dict[str, Any]
GRAPHQL_RESPONSE = "application/graphql-response+json"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fresh_query() -> str:
    """A document no earlier request sent (the server's store is shared by the session)."""
    return f"query Stats {{ dashboardStats {{ totalOrders }} }} # {uuid.uuid4().hex}"


def persisted(query: str) -> JSON:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(query)}}


def codes(body: JSON) -> list[str | None]:
    return [(error.get("extensions") or {}).get("code") for error in body.get("errors", [])]


def post(api: httpx.Client, body: JSON, accept: str = "application/json") -> httpx.Response:
    return api.post("/graphql", json=body, headers={"Accept": accept})


def get(api: httpx.Client, params: dict[str, object]) -> httpx.Response:
    query = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in params.items()
    }
    return api.get("/graphql", params=query, headers={"Accept": "application/json"})


def test_post_hash_miss_then_register_then_hit(api: httpx.Client) -> None:
    query = fresh_query()
    extensions = persisted(query)

    miss = post(api, {"extensions": extensions})
    assert miss.status_code == 200
    assert miss.headers["content-type"].startswith("application/json")
    assert miss.json() == {
        "data": None,
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ],
    }

    registered = post(api, {"query": query, "extensions": extensions})
    assert registered.status_code == 200
    total = registered.json()["data"]["dashboardStats"]["totalOrders"]
    assert isinstance(total, int)

    hit = post(api, {"extensions": extensions, "operationName": "Stats"})
    assert hit.status_code == 200
    assert hit.json() == {"data": {"dashboardStats": {"totalOrders": total}}}


def test_a_miss_under_graphql_response_json_is_a_400_graphql_error(api: httpx.Client) -> None:
    miss = post(api, {"extensions": persisted(fresh_query())}, accept=GRAPHQL_RESPONSE)
    assert miss.status_code == 400
    assert miss.headers["content-type"] == GRAPHQL_RESPONSE
    assert miss.json() == {
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
    }


def test_get_hash_miss_then_hit_and_a_persisted_mutation_stays_405(api: httpx.Client) -> None:
    query = fresh_query()
    extensions = persisted(query)
    assert codes(get(api, {"extensions": extensions}).json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    registered = get(api, {"query": query, "extensions": extensions})
    assert registered.status_code == 200, registered.text
    hit = get(api, {"extensions": extensions})
    assert hit.status_code == 200
    assert set(hit.json()["data"]["dashboardStats"]) == {"totalOrders"}

    mutation = (
        "mutation Cancel($input: CancelOrderInput!) { cancelOrder(input: $input) { __typename } }"
        f" # {uuid.uuid4().hex}"
    )
    variables = {"input": {"orderId": new_id(), "reason": "r"}}
    stored = post(
        api, {"query": mutation, "variables": variables, "extensions": persisted(mutation)}
    )
    assert stored.json()["data"]["cancelOrder"]["__typename"] == "OrderNotFound"
    refused = get(api, {"extensions": persisted(mutation), "variables": variables})
    assert refused.status_code == 405


def test_a_hash_that_does_not_match_is_refused_and_stores_nothing(api: httpx.Client) -> None:
    query = fresh_query()
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": sha256(query + " ")}}
    refused = post(api, {"query": query, "extensions": wrong})
    assert codes(refused.json()) == ["BAD_USER_INPUT"]
    assert "does not match" in refused.json()["errors"][0]["message"]
    assert refused.json()["data"] is None
    assert codes(post(api, {"extensions": wrong}).json()) == ["PERSISTED_QUERY_NOT_FOUND"]


def test_only_documents_that_validate_are_stored(api: httpx.Client) -> None:
    query = f"query {{ noSuchField }} # {uuid.uuid4().hex}"
    sent = post(api, {"query": query, "extensions": persisted(query)})
    assert sent.json()["errors"][0]["message"].startswith("Cannot query field 'noSuchField'")
    assert codes(post(api, {"extensions": persisted(query)}).json()) == [
        "PERSISTED_QUERY_NOT_FOUND"
    ]


def test_a_malformed_persisted_query_extension_is_bad_user_input(api: httpx.Client) -> None:
    query = fresh_query()
    for extension in (
        {"version": 2, "sha256Hash": sha256(query)},
        {"version": 1, "sha256Hash": "not-a-hash"},
        "a string",
    ):
        body = post(api, {"query": query, "extensions": {"persistedQuery": extension}}).json()
        assert codes(body) == ["BAD_USER_INPUT"], extension


async def _frame(ws: ClientConnection) -> JSON:
    async with asyncio.timeout(10):
        while True:
            message: JSON = orjson.loads(await ws.recv())
            if message["type"] not in ("ka", "ping", "pong"):
                return message


async def _ws_session(server: LiveServer, token: str, protocol: str) -> ClientConnection:
    ws = await connect(
        server.ws_url, subprotocols=[Subprotocol(protocol)], proxy=None, open_timeout=10
    )
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
    await ws.send(orjson.dumps(init).decode())
    assert (await _frame(ws))["type"] == "connection_ack"
    return ws


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_websocket_hash_miss_then_register_then_hit(
    server: LiveServer, staff_token: str, api: httpx.Client, protocol: str
) -> None:
    order_id = new_id()
    place_order(api, order_id)
    query = (
        "subscription Watch($id: ID!) { orderUpdated(id: $id) { id status } }"
        f" # {uuid.uuid4().hex}"
    )
    extensions = persisted(query)
    variables = {"id": order_id}
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    ws = await _ws_session(server, staff_token, protocol)
    try:
        miss = {"variables": variables, "extensions": extensions}
        await ws.send(orjson.dumps({"type": start, "id": "1", "payload": miss}).decode())
        error = await _frame(ws)
        assert error["type"] == "error"
        assert error["id"] == "1"
        errors = error["payload"] if protocol == "graphql-transport-ws" else [error["payload"]]
        assert errors == [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]

        full = {"query": query, "variables": variables, "extensions": extensions}
        await ws.send(orjson.dumps({"type": start, "id": "2", "payload": full}).decode())
        first = await _frame(ws)
        assert first["id"] == "2"
        assert first["type"] in ("next", "data")
        assert first["payload"]["data"]["orderUpdated"] == {"id": order_id, "status": "PENDING"}

        await ws.send(orjson.dumps({"type": start, "id": "3", "payload": miss}).decode())
        hit = await _frame(ws)
        assert hit["id"] == "3"
        assert hit["type"] in ("next", "data")
        assert hit["payload"]["data"]["orderUpdated"] == {"id": order_id, "status": "PENDING"}
    finally:
        await ws.close()
    # The socket learnt it for HTTP as well: one store per server.
    assert post(api, {"extensions": extensions, "variables": variables}).status_code == 200


# `only`: a manifest as Apollo's generate-persisted-query-manifest writes it.
LISTED_QUERY = "query ListedStats { dashboardStats { totalOrders } }"
LISTED_SUBSCRIPTION = "subscription ListedOrder($id: ID!) { orderUpdated(id: $id) { id status } }"
UNLISTED_QUERY = "query Unlisted { dashboardStats { totalOrders byStatus { status } } }"


def _manifest(path: Path) -> Path:
    operations = [
        {"id": sha256(body), "name": name, "type": kind, "body": body}
        for name, kind, body in (
            ("ListedStats", "query", LISTED_QUERY),
            ("ListedOrder", "subscription", LISTED_SUBSCRIPTION),
        )
    ]
    manifest = {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
    path.write_text(json.dumps(manifest))
    return path


@pytest.fixture(scope="module")
def only_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("persisted-only")
    env = {
        "PERSISTED_QUERIES": "only",
        "PERSISTED_QUERIES_MANIFEST": str(_manifest(root / "m.json")),
    }
    with running_server(root, env) as live:
        yield live


@pytest.fixture
def only_api(only_server: LiveServer) -> Iterator[httpx.Client]:
    token = only_server.token(sub="staff-only", role="staff")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=only_server.url, headers=headers, timeout=30, trust_env=False) as c:
        yield c


def test_only_serves_the_manifest_by_hash_or_document(only_api: httpx.Client) -> None:
    by_hash = post(only_api, {"extensions": persisted(LISTED_QUERY)}).json()
    assert set(by_hash["data"]["dashboardStats"]) == {"totalOrders"}
    by_get = get(only_api, {"extensions": persisted(LISTED_QUERY)}).json()
    assert by_get == by_hash
    by_document = post(only_api, {"query": LISTED_QUERY}).json()
    assert by_document == by_hash


def test_only_refuses_everything_else_with_a_code(only_api: httpx.Client) -> None:
    unlisted_hash = post(only_api, {"extensions": persisted(UNLISTED_QUERY)}).json()
    assert codes(unlisted_hash) == ["PERSISTED_QUERY_NOT_IN_LIST"]
    assert unlisted_hash["data"] is None
    # Sending the document after the refusal does not teach the server anything.
    for body in (
        {"query": UNLISTED_QUERY, "extensions": persisted(UNLISTED_QUERY)},
        {"query": UNLISTED_QUERY},
        {"query": "{ __typename }"},
    ):
        refused = post(only_api, body).json()
        assert codes(refused) == ["QUERY_NOT_IN_SAFELIST"], body
        assert "manifest" in refused["errors"][0]["message"]
    assert codes(post(only_api, {"extensions": persisted(UNLISTED_QUERY)}).json()) == [
        "PERSISTED_QUERY_NOT_IN_LIST"
    ]
    mismatched = {"persistedQuery": {"version": 1, "sha256Hash": sha256(LISTED_QUERY)}}
    assert codes(post(only_api, {"query": UNLISTED_QUERY, "extensions": mismatched}).json()) == [
        "BAD_USER_INPUT"
    ]
    graphql_response = post(only_api, {"query": UNLISTED_QUERY}, accept=GRAPHQL_RESPONSE)
    assert graphql_response.status_code == 400
    assert codes(graphql_response.json()) == ["QUERY_NOT_IN_SAFELIST"]


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_only_over_websockets(only_server: LiveServer, protocol: str) -> None:
    token = only_server.token(sub="staff-only", role="staff")
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    ws = await _ws_session(only_server, token, protocol)
    try:
        listed = {"extensions": persisted(LISTED_QUERY)}
        await ws.send(orjson.dumps({"type": start, "id": "1", "payload": listed}).decode())
        result = await _frame(ws)
        assert result["id"] == "1"
        assert result["type"] in ("next", "data")
        assert set(result["payload"]["data"]["dashboardStats"]) == {"totalOrders"}
        assert (await _frame(ws))["type"] == "complete"

        for payload, code in (
            ({"query": UNLISTED_QUERY}, "QUERY_NOT_IN_SAFELIST"),
            ({"extensions": persisted(UNLISTED_QUERY)}, "PERSISTED_QUERY_NOT_IN_LIST"),
        ):
            await ws.send(orjson.dumps({"type": start, "id": "2", "payload": payload}).decode())
            error = await _frame(ws)
            assert error["type"] == "error"
            assert error["id"] == "2"
            errors = error["payload"] if protocol == "graphql-transport-ws" else [error["payload"]]
            assert codes({"errors": errors}) == [code]
    finally:
        await ws.close()


def test_off_refuses_hash_only_requests_so_clients_send_documents(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path, {"PERSISTED_QUERIES": "off"}) as live:
        headers = {"Authorization": f"Bearer {live.token(sub='s', role='staff')}"}
        with httpx.Client(base_url=live.url, headers=headers, timeout=30, trust_env=False) as api:
            query = fresh_query()
            refused = post(api, {"extensions": persisted(query)}).json()
            assert refused["errors"] == [
                {
                    "message": "PersistedQueryNotSupported",
                    "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"},
                }
            ]
            wrong = {"persistedQuery": {"version": 1, "sha256Hash": sha256("another")}}
            ran = post(api, {"query": query, "extensions": wrong}).json()
            assert set(ran["data"]["dashboardStats"]) == {"totalOrders"}
            assert codes(post(api, {"extensions": persisted(query)}).json()) == [
                "PERSISTED_QUERY_NOT_SUPPORTED"
            ]


def test_settings_are_refused_by_name(tmp_path: Path) -> None:
    secret = {"JWT_SECRET": "s" * 32}
    with pytest.raises(SettingsError, match="PERSISTED_QUERIES must be one of auto, only, off"):
        Settings.from_env({**secret, "PERSISTED_QUERIES": "sometimes"})
    with pytest.raises(
        SettingsError, match="PERSISTED_QUERIES=only needs PERSISTED_QUERIES_MANIFEST"
    ):
        Settings.from_env({**secret, "PERSISTED_QUERIES": "only"})
    with pytest.raises(SettingsError, match="PERSISTED_QUERIES_MANIFEST is set but"):
        Settings.from_env({**secret, "PERSISTED_QUERIES_MANIFEST": str(tmp_path / "m.json")})
    missing = {**secret, "PERSISTED_QUERIES": "only", "PERSISTED_QUERIES_MANIFEST": "/nope.json"}
    with pytest.raises(SettingsError, match=r"PERSISTED_QUERIES_MANIFEST: cannot read /nope\.json"):
        Settings.from_env(missing)
    wrong_id = tmp_path / "wrong.json"
    operation = {"id": sha256("x"), "name": "Stats", "type": "query", "body": LISTED_QUERY}
    wrong_id.write_text(
        json.dumps(
            {"format": "apollo-persisted-query-manifest", "version": 1, "operations": [operation]}
        )
    )
    with pytest.raises(SettingsError, match="not the SHA-256 of its body"):
        Settings.from_env({**missing, "PERSISTED_QUERIES_MANIFEST": str(wrong_id)})
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something", "operations": []}))
    with pytest.raises(SettingsError, match="not an Apollo persisted-query manifest"):
        Settings.from_env({**missing, "PERSISTED_QUERIES_MANIFEST": str(other)})
    settings = Settings.from_env(
        {**missing, "PERSISTED_QUERIES_MANIFEST": str(_manifest(tmp_path / "good.json"))}
    )
    assert dict(settings.persisted_queries.manifest) == {
        sha256(LISTED_QUERY): LISTED_QUERY,
        sha256(LISTED_SUBSCRIPTION): LISTED_SUBSCRIPTION,
    }
