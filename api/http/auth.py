"""Bearer JWT authentication and the auth errors: HS256 tokens (claims `sub`, `role`, `exp`)
signed with JWT_SECRET, or, with an identity provider configured, its RS256/ES256 tokens
(`api.http.oidc`) and nothing else.

A customer (`sub` = its customerId) places orders for itself, cancels its own orders and reads and
subscribes to its own orders only; everything else is staff's. Field-level rules live in
`api.graphql.permissions`; this module only answers "who is calling".
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from graphql import GraphQLError

from api.http.oidc import ALGORITHMS, IdentityProvider, ProviderKeys, claim_at, is_staff

ALGORITHM = "HS256"
BEARER = "bearer "
DEFAULT_TTL = 3600
DEFAULT_MAX_TTL = 86_400
"""Seconds ahead a token's `exp` may lie (MAX_TOKEN_TTL); see `Authenticator`."""


class Role(enum.StrEnum):
    """What a caller may do: act for one customer, or operate the shop."""

    CUSTOMER = "customer"
    STAFF = "staff"


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """A verified caller."""

    sub: str
    role: Role
    expires_at: float

    @property
    def is_staff(self) -> bool:
        """Staff may do everything."""
        return self.role is Role.STAFF

    def may_act_for(self, customer_id: str | None) -> bool:
        """Whether the caller may act on (or read) the customer's orders."""
        return self.is_staff or (customer_id is not None and customer_id == self.sub)


class Unauthenticated(GraphQLError):
    """No token, or one that is malformed, wrongly signed or expired."""

    def __init__(
        self, message: str = "Authentication required: send a valid Bearer token."
    ) -> None:
        super().__init__(message, extensions={"code": "UNAUTHENTICATED"})


class Forbidden(GraphQLError):
    """A valid caller asking for something its role does not allow."""

    def __init__(self, message: str = "Not allowed for this caller.") -> None:
        super().__init__(message, extensions={"code": "FORBIDDEN"})


class Authenticator:
    """Issues and verifies tokens with one secret.

    Verified tokens are cached (bounded, least recently used out first) because clients send the
    same token with every request and verifying costs more than a small GraphQL request's
    execution; a cached token still expires at its `exp`.

    A token whose `exp` lies more than `max_ttl` seconds ahead is refused, whoever signed it: a
    leaked long-lived token (`exp` in the year 9999) would otherwise be a permanent credential
    that only rotating the secret revokes.

    With a `provider`, only its tokens are accepted (HS256 ones are refused, the secret only
    signs what `issue` makes, for tools). `authenticate` checks with the keys held now; `verify`
    (what requests and websockets call) also fetches the provider's keys when the token names
    one not held yet, within `ProviderKeys`' rate limit.
    """

    def __init__(
        self,
        secret: str,
        *,
        max_ttl: int = DEFAULT_MAX_TTL,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
        provider: IdentityProvider | None = None,
        keys: ProviderKeys | None = None,
    ) -> None:
        self._secret = secret
        self._provider = provider
        self._keys = keys or (ProviderKeys(provider) if provider is not None else None)
        self._max_ttl = max_ttl
        self._clock = clock
        self._cache_size = cache_size
        self._cache: OrderedDict[str, Principal] = OrderedDict()

    @property
    def max_ttl(self) -> int:
        """The longest lifetime a token may have here, in seconds (MAX_TOKEN_TTL)."""
        return self._max_ttl

    def issue(self, *, sub: str, role: Role | str, ttl: int = DEFAULT_TTL) -> str:
        """A signed token for `sub` in `role`, valid for `ttl` seconds (at most `max_ttl`)."""
        if not 0 < ttl <= self._max_ttl:
            raise ValueError(f"a token's ttl must be 1 to {self._max_ttl} seconds, got {ttl}")
        claims: dict[str, Any] = {
            "sub": sub,
            "role": Role(role).value,
            "exp": int(self._clock()) + ttl,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    @property
    def provider_keys(self) -> ProviderKeys | None:
        """The identity provider's keys (None: HS256 with the secret)."""
        return self._keys

    async def verify(self, authorization: str | None) -> Principal:
        """`authenticate`, after fetching the provider's keys if the token names a key not held
        yet (the first token, or one signed after a rotation). Raises `Unauthenticated`."""
        try:
            return self.authenticate(authorization)
        except _KeyNotHeld:
            assert self._keys is not None  # only raised with a provider
            await self._keys.refresh()
        try:
            return self.authenticate(authorization)
        except _KeyNotHeld as error:
            raise Unauthenticated("The token's signing key is not known.") from error

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller of an `Authorization` header value ("Bearer <token>"), with the keys held
        now. Raises `Unauthenticated`."""
        if not authorization or not authorization[: len(BEARER)].lower() == BEARER:
            raise Unauthenticated()
        token = authorization[len(BEARER) :].strip()
        now = self._clock()
        principal = self._cache.get(token)
        if principal is not None:
            if principal.expires_at > now:
                self._cache.move_to_end(token)
                return principal
            del self._cache[token]
            raise Unauthenticated("The token has expired.")
        principal = self._verify(token, now)
        self._cache[token] = principal
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    def _verify(self, token: str, now: float) -> Principal:
        if self._provider is not None and self._keys is not None:
            return self._verify_provider(token, now, self._provider, self._keys)
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "role", "exp"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise Unauthenticated("The token has expired.") from error
        except jwt.InvalidTokenError as error:
            raise Unauthenticated("The token is not valid.") from error
        sub, role, exp = claims.get("sub"), claims.get("role"), claims.get("exp")
        if not isinstance(sub, str) or not sub or role not in tuple(Role):
            raise Unauthenticated("The token's claims are not valid.")
        return Principal(sub=sub, role=Role(role), expires_at=self._checked_exp(exp, now))

    def _checked_exp(self, exp: object, now: float) -> float:
        if not isinstance(exp, int | float) or exp <= now:
            raise Unauthenticated("The token has expired.")
        if exp - now > self._max_ttl:
            raise Unauthenticated(
                f"The token expires too far ahead: this server accepts tokens valid for at most "
                f"{self._max_ttl} s (MAX_TOKEN_TTL); ask for a shorter-lived one."
            )
        return float(exp)

    def _verify_provider(
        self, token: str, now: float, provider: IdentityProvider, keys: ProviderKeys
    ) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise Unauthenticated("The token is not valid.") from error
        alg, kid = header.get("alg"), header.get("kid")
        # Checked before any key is looked at: an HS256 token "signed" with the provider's
        # public key must never reach a verifier.
        if alg not in ALGORITHMS:
            raise Unauthenticated(f"The token must be signed with {' or '.join(ALGORITHMS)}.")
        if not isinstance(kid, str):
            raise Unauthenticated("The token names no signing key (kid).")
        key = keys.get(kid)
        if key is None:
            raise _KeyNotHeld(kid)
        if key.algorithm_name != alg:
            raise Unauthenticated("The token's algorithm does not match its key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=provider.audience,
                issuer=provider.issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise Unauthenticated("The token has expired.") from error
        except jwt.InvalidTokenError as error:
            raise Unauthenticated("The token is not valid.") from error
        role = Role.STAFF if is_staff(claim_at(claims, provider.role_claim)) else Role.CUSTOMER
        subject = claim_at(claims, provider.customer_claim)
        if subject is None and role is Role.STAFF:
            subject = claims.get("sub")  # staff act for no customer: their subject names them
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("The token's claims are not valid.")
        return Principal(sub=subject, role=role, expires_at=self._checked_exp(claims["exp"], now))


class _KeyNotHeld(Unauthenticated):
    """The token names a key the held set lacks (a fetch may find it)."""

    def __init__(self, kid: str) -> None:
        super().__init__("The token's signing key is not known.")
        self.kid = kid
