"""Tokens from an identity provider (OIDC): its signing keys, and its claims as a `Principal`.

The provider publishes its public keys as a JWKS (found through
`{issuer}/.well-known/openid-configuration`, or given as JWT_JWKS_URL). Keys are fetched once and
kept; a token naming a `kid` the set lacks triggers a refresh, because that is how a provider's
key rotation shows. Refreshes are single-flight and at most one per `REFRESH_INTERVAL`: anyone
can send tokens with made-up kids, and they must not turn this service into a JWKS fetch loop
against the provider.

Parsing keys and checking signatures, `exp`, `iss` and `aud` is PyJWT's (`PyJWKSet`,
`jwt.decode`); this module only chooses what is accepted: RS256 and ES256, never an HMAC
algorithm (a provider's public key used as an HS256 secret is the classic forgery).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
"""The signatures accepted from a provider: asymmetric only."""

REFRESH_INTERVAL = 30.0
"""Seconds between two JWKS fetches at most (a rotation is followed within this)."""

FETCH_TIMEOUT = 5.0
DISCOVERY_PATH = "/.well-known/openid-configuration"

Fetch = Callable[[str], Awaitable[Any]]
"""GETs a URL and returns its JSON body; raises on a network error or a non-2xx answer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityProvider:
    """Where tokens come from and how their claims read (the JWT_* settings)."""

    issuer: str
    audience: str
    jwks_url: str | None = None  # None: discovered from the issuer
    role_claim: str = "role"
    customer_claim: str = "sub"
    # JWT_JWKS_REFRESH_INTERVAL: not a contract setting, a knob for the tests (README "Testing"),
    # which follow a rotation without waiting out the production interval.
    refresh_interval: float = REFRESH_INTERVAL


async def fetch_json(url: str) -> Any:
    """The JSON body of a GET of `url` (a short timeout; redirects not followed)."""
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client:
        response = await client.get(url, headers={"accept": "application/json"})
        response.raise_for_status()
        return response.json()


class ProviderKeys:
    """The provider's signing keys by `kid`, refreshed on demand within the rate limit."""

    def __init__(
        self,
        provider: IdentityProvider,
        *,
        fetch: Fetch = fetch_json,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self._fetch = fetch
        self._interval = provider.refresh_interval if interval is None else interval
        self._clock = clock
        self._jwks_url = provider.jwks_url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._last_attempt = float("-inf")
        self._inflight: asyncio.Task[None] | None = None
        self._failing = False
        self.fetches = 0
        """JWKS fetches attempted so far (discovery not counted)."""

    def get(self, kid: str) -> jwt.PyJWK | None:
        """The key named `kid`, from what is held now (no I/O)."""
        return self._keys.get(kid)

    async def refresh(self) -> None:
        """Fetch the key set again unless one was fetched within the interval; concurrent
        callers share one fetch. A failed fetch keeps the keys held so far."""
        if self._inflight is None:
            if self._clock() - self._last_attempt < self._interval:
                return
            self._last_attempt = self._clock()
            self._inflight = asyncio.create_task(self._load(), name="jwks-refresh")
        task = self._inflight
        try:
            # Shielded: a caller that gives up (its request cancelled) must not cancel the
            # fetch the others wait for.
            await asyncio.shield(task)
        finally:
            if task.done() and self._inflight is task:
                self._inflight = None

    async def _load(self) -> None:
        try:
            url = self._jwks_url or await self._discover()
            self._jwks_url = url
            self.fetches += 1
            keys = _signing_keys(await self._fetch(url))
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError, jwt.PyJWKError) as error:
            if not self._failing:  # one line per outage, not one per request
                logger.warning(
                    "event=jwks_fetch_failed issuer=%s reason=%r",
                    self._provider.issuer,
                    f"{type(error).__name__}: {error}",
                )
            self._failing = True
            return
        if self._failing:
            logger.info("event=jwks_fetch_recovered issuer=%s", self._provider.issuer)
        self._failing = False
        added = keys.keys() - self._keys.keys()
        self._keys = keys
        logger.info(
            "event=jwks_loaded issuer=%s keys=%d new=%s",
            self._provider.issuer,
            len(keys),
            ",".join(sorted(added)) or "-",
        )

    async def _discover(self) -> str:
        document = await self._fetch(self._provider.issuer.rstrip("/") + DISCOVERY_PATH)
        if not isinstance(document, Mapping):
            raise ValueError("the discovery document is not a JSON object")
        # OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer asked
        # for, or its keys are some other issuer's.
        if document.get("issuer") != self._provider.issuer:
            raise ValueError(
                f"the discovery document names issuer {document.get('issuer')!r}, "
                f"not {self._provider.issuer!r}"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise ValueError("the discovery document has no jwks_uri")
        return jwks_uri


def _signing_keys(document: Any) -> dict[str, jwt.PyJWK]:
    """The set's signature keys with a `kid` and an accepted algorithm, by kid."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS is not a JSON object with a keys list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str):
            continue
        try:
            key = jwt.PyJWK(dict(entry))
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue  # a key type or curve this service does not take: skipped, not fatal
        if key.algorithm_name in ALGORITHMS:
            keys[kid] = key
    return keys


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (`realm_access.roles`), None where the path breaks. A claim
    whose own name holds dots (Auth0's `https://shop.example/role`) is found whole first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def is_staff(value: Any) -> bool:
    """Whether a role claim's value (a string or a list of them) says staff."""
    if isinstance(value, str):
        return value == "staff"
    return isinstance(value, list) and "staff" in value
