"""Tokens from a real identity provider (the npm `oidc-provider`, started on loopback): they work
over HTTP and both websocket protocols, with the role and the customer id read from the
configured claims; anything else (another issuer or audience, expired, too long-lived, an
unknown key, HS256 in any form, `none`) is UNAUTHENTICATED."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e.gql import PLACE, GraphQLClient, Orders, accepted, error_codes, item, new_id
from tests.e2e.ws import Protocol, WsRejected, graphql_ws
from tests.support.live_server import LiveServer, running_server
from tests.support.oidc_provider import AUDIENCE, Client, OidcProvider, ec_key

PROTOCOLS: list[Protocol] = ["graphql-transport-ws", "graphql-ws"]
CUSTOMER = "cust-oidc-1"
CLIENTS = [
    # Keycloak's shape: roles in realm_access.roles, among others the provider adds.
    Client("ops-rs", "RS256", {"realm_access": {"roles": ["offline_access", "staff"]}}),
    Client("ops-es", "ES256", {"realm_access": {"roles": ["staff"]}}),
    Client(
        "shop-web",
        "ES256",
        {"realm_access": {"roles": ["offline_access"]}, "customer_id": CUSTOMER},
    ),
]
STATS = "{ dashboardStats { totalOrders } }"
REFRESH_WINDOW = 20.0
"""The rotation test's JWKS refresh interval (JWT_JWKS_REFRESH_INTERVAL, a test knob; 30 s in
production): long enough for its floods and the provider's restart to fit in one window on a
loaded machine (they took 19 s sent one by one beside three other test workers, load 11 on two
cores), shorter than the 30 s it would wait out otherwise."""


def provider_env(provider: OidcProvider) -> dict[str, str]:
    """The server's settings for this provider, as an operator would write them."""
    return {
        "JWT_ISSUER": provider.issuer,
        "JWT_AUDIENCE": AUDIENCE,
        "JWT_ROLE_CLAIM": "realm_access.roles",
        "JWT_CUSTOMER_CLAIM": "customer_id",
    }


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """The identity provider."""
    provider = OidcProvider(tmp_path_factory.mktemp("oidc"), CLIENTS)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def server(
    provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server taking the provider's tokens (it has a JWT_SECRET too, which must not help)."""
    with running_server(tmp_path_factory.mktemp("oidc-server"), provider_env(provider)) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the test."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0, trust_env=False) as client:
        yield client


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(claims: dict[str, Any], key: bytes, kid: str | None = None) -> str:
    """HS256 by hand: PyJWT (rightly) refuses a PEM public key as an HMAC secret."""
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _claims(provider: OidcProvider, **changes: Any) -> dict[str, Any]:
    """What the provider puts in a staff token, with `changes`."""
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": AUDIENCE,
        "sub": "ops-rs",
        "iat": now,
        "exp": now + 300,
        "realm_access": {"roles": ["staff"]},
    }
    return {**claims, **changes}


FORGERIES: dict[str, Callable[[OidcProvider, LiveServer], str]] = {
    "another audience": lambda p, _: p.token("ops-rs", resource="https://other.test/api"),
    "another issuer": lambda p, _: p.sign(_claims(p, iss="https://evil.test")),
    "expired": lambda p, _: p.sign(_claims(p, exp=int(time.time()) - 5)),
    "longer than MAX_TOKEN_TTL": lambda p, _: p.sign(_claims(p, exp=int(time.time()) + 90_000)),
    "an unknown kid": lambda p, _: jwt.encode(
        _claims(p), ec_key("x").private, algorithm="ES256", headers={"kid": "forged-kid"}
    ),
    "a known kid, another key": lambda p, _: jwt.encode(
        _claims(p), ec_key("x").private, algorithm="ES256", headers={"kid": p.keys[1].kid}
    ),
    "HS256 with the public key as secret": lambda p, _: _hs256(
        _claims(p), p.keys[0].public_pem(), kid=p.keys[0].kid
    ),
    "HS256 with the server's JWT_SECRET": lambda p, s: s.token(sub="ops-rs", role="staff"),
    "alg none": lambda p, _: jwt.encode(_claims(p), "", algorithm="none"),
    "no audience": lambda p, _: p.sign({k: v for k, v in _claims(p).items() if k != "aud"}),
}


@pytest.mark.parametrize("client_id", ["ops-rs", "ops-es"])
async def test_provider_staff_tokens_work_over_http(
    http: httpx.AsyncClient, provider: OidcProvider, client_id: str
) -> None:
    staff = GraphQLClient(http, provider.token(client_id))
    accepted(await Orders(staff).place(new_id(), customer_id="someone"))
    assert (await staff.data(STATS))["dashboardStats"]["totalOrders"] >= 0


async def test_a_provider_customer_acts_for_the_customer_claim_only(
    http: httpx.AsyncClient, provider: OidcProvider
) -> None:
    customer = GraphQLClient(http, provider.token("shop-web"))
    order_id = new_id()
    accepted(await Orders(customer).place(order_id, customer_id=CUSTOMER))
    assert error_codes(await customer.execute(STATS)) == ["FORBIDDEN"]
    foreign = {"customerId": "shop-web", "items": [item()]}  # its `sub`, not its customer id
    result = await customer.execute(PLACE, {"input": foreign, "key": None})
    assert error_codes(result) == ["FORBIDDEN"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("client_id", ["ops-rs", "shop-web"])
async def test_provider_tokens_work_on_both_websocket_protocols(
    http: httpx.AsyncClient,
    server: LiveServer,
    provider: OidcProvider,
    protocol: Protocol,
    client_id: str,
) -> None:
    token = provider.token(client_id)
    order_id = new_id("ws")
    accepted(await Orders(GraphQLClient(http, token)).place(order_id, customer_id=CUSTOMER))
    async with graphql_ws(server.ws_url, token, protocol) as socket:
        subscription = await socket.subscribe(
            "subscription($id: ID!) { orderUpdated(id: $id) { id version } }", {"id": order_id}
        )
        assert (await subscription.event("orderUpdated"))["id"] == order_id


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_forged_and_foreign_tokens_are_unauthenticated(
    http: httpx.AsyncClient, server: LiveServer, provider: OidcProvider, forgery: str
) -> None:
    token = FORGERIES[forgery](provider, server)
    response = await GraphQLClient(http, token).post(STATS)
    assert response.status_code == 401, response.text
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]
    for protocol in PROTOCOLS:
        with pytest.raises(WsRejected):
            async with graphql_ws(server.ws_url, token, protocol):
                pass


async def test_the_provider_key_rotation_is_followed_and_forged_kids_cannot_make_it_fetch(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Keys held, the provider rotates, the new kid is fetched once; in between, a flood of
    made-up kids costs at most one JWKS fetch per refresh window."""
    provider = OidcProvider(tmp_path_factory.mktemp("rotation"), CLIENTS)
    provider.start()
    try:
        root = tmp_path_factory.mktemp("rotation-server")
        env = {**provider_env(provider), "JWT_JWKS_REFRESH_INTERVAL": str(REFRESH_WINDOW)}
        with running_server(root, env) as server:
            async with httpx.AsyncClient(
                base_url=server.url, timeout=30.0, trust_env=False
            ) as http:
                await _rotation(provider, GraphQLClient(http, None))
    finally:
        provider.stop()


def _forged(provider: OidcProvider, count: int) -> list[str]:
    """`count` tokens naming made-up kids, signed beforehand: the floods are timed."""
    key = ec_key("flood")
    return [
        jwt.encode(
            _claims(provider), key.private, algorithm="ES256", headers={"kid": f"forged-{n}"}
        )
        for n in range(count)
    ]


async def _flood(gql: GraphQLClient, tokens: list[str]) -> None:
    """All at once, as an attacker would send them."""
    results = await asyncio.gather(*(gql.execute(STATS, token=token) for token in tokens))
    assert [error_codes(result) for result in results] == [["UNAUTHENTICATED"]] * len(tokens)


async def _rotation(provider: OidcProvider, gql: GraphQLClient) -> None:
    first_token = provider.token("ops-rs")
    es_token = provider.token("ops-es")
    forged = _forged(provider, 200)
    window_opened = time.monotonic()  # no later than the server's first fetch
    await gql.data(STATS, token=first_token)
    first_fetch = time.monotonic()
    assert provider.stats()["jwks"] == 1
    await gql.data(STATS, token=es_token)  # the same set holds the EC key
    await _flood(gql, forged)
    assert provider.stats()["jwks"] == 1

    provider.rotate()  # a new process: its counts start again
    rotated = provider.token("ops-rs")
    assert jwt.get_unverified_header(rotated)["kid"] == "rsa-3"
    await _flood(gql, forged[:100])
    # Still within the window of the first fetch: not fetched, so not known yet.
    result = await gql.execute(STATS, token=rotated)
    assert time.monotonic() < window_opened + REFRESH_WINDOW, "the floods outlasted the window"
    assert error_codes(result) == ["UNAUTHENTICATED"]
    assert provider.stats()["jwks"] == 0

    await asyncio.sleep(max(0.0, first_fetch + REFRESH_WINDOW + 1 - time.monotonic()))
    await gql.data(STATS, token=rotated)
    assert provider.stats()["jwks"] == 1  # one refresh found the new key
    await _flood(gql, forged)
    await gql.data(STATS, token=es_token)
    assert provider.stats()["jwks"] == 1
