"""The provider's key set (`api.http.oidc.ProviderKeys`) against a JWKS endpoint of our own making:
one fetch however many callers wait, none again within the interval, the held keys kept when a
fetch fails, and a discovery document for another issuer refused."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from api.http.oidc import IdentityProvider, ProviderKeys, claim_at, is_staff

ISSUER = "https://idp.test/realms/shop"
JWKS_URL = "https://idp.test/jwks"


def _jwk(kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))
    return {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}


class Endpoint:
    """Answers discovery and the JWKS; counts JWKS fetches; can fail or be slow."""

    def __init__(self, kids: list[str], issuer: str = ISSUER) -> None:
        self.keys = [_jwk(kid) for kid in kids]
        self.issuer = issuer
        self.fetches = 0
        self.fail = False

    async def __call__(self, url: str) -> Any:
        await asyncio.sleep(0.01)
        if url.endswith("/.well-known/openid-configuration"):
            return {"issuer": self.issuer, "jwks_uri": JWKS_URL}
        assert url == JWKS_URL
        self.fetches += 1
        if self.fail:
            raise ValueError("the provider answered 503")
        return {"keys": [*self.keys, {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _keys(endpoint: Endpoint, clock: Clock) -> ProviderKeys:
    provider = IdentityProvider(issuer=ISSUER, audience="orders")
    return ProviderKeys(provider, fetch=endpoint, interval=30.0, clock=clock)


async def test_concurrent_refreshes_share_one_fetch_and_the_interval_holds() -> None:
    endpoint, clock = Endpoint(["a"]), Clock()
    keys = _keys(endpoint, clock)
    await asyncio.gather(*(keys.refresh() for _ in range(50)))
    assert endpoint.fetches == 1
    assert keys.get("a") is not None
    assert keys.get("hmac") is None  # a symmetric key in the set is never taken

    endpoint.keys.append(_jwk("b"))
    clock.now += 29
    await keys.refresh()
    assert (endpoint.fetches, keys.get("b")) == (1, None)
    clock.now += 2
    await keys.refresh()
    assert endpoint.fetches == 2
    assert keys.get("b") is not None


async def test_a_failed_fetch_keeps_the_held_keys_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint, clock = Endpoint(["a"]), Clock()
    keys = _keys(endpoint, clock)
    await keys.refresh()
    endpoint.fail = True
    with caplog.at_level(logging.WARNING, logger="api.http.oidc"):
        for _ in range(3):
            clock.now += 31
            await keys.refresh()
    assert endpoint.fetches == 4
    assert keys.get("a") is not None
    # Only the failures' lines: an earlier test may have left api's loggers at INFO.
    failures = [r.message for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(failures) == 1
    assert "event=jwks_fetch_failed" in failures[0]


async def test_a_discovery_document_of_another_issuer_gives_no_keys() -> None:
    endpoint, clock = Endpoint(["a"], issuer="https://evil.test"), Clock()
    keys = _keys(endpoint, clock)
    await keys.refresh()
    assert endpoint.fetches == 0
    assert keys.get("a") is None


def test_claims_are_found_by_dotted_path_or_whole_namespaced_name() -> None:
    claims = {
        "realm_access": {"roles": ["offline_access", "staff"]},
        "https://shop.example/roles": ["staff"],
        "role": "customer",
    }
    assert is_staff(claim_at(claims, "realm_access.roles"))
    assert is_staff(claim_at(claims, "https://shop.example/roles"))
    assert not is_staff(claim_at(claims, "role"))
    assert claim_at(claims, "realm_access.groups") is None
    assert claim_at(claims, "role.name") is None
    assert not is_staff(None)
    assert not is_staff({"staff": True})
