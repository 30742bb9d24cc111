"""Bearer JWT authentication (HS256, claims `sub`, `role`, `exp`) and the auth errors.

A customer (`sub` = its customerId) places orders for itself, cancels its own orders and reads and
subscribes to its own orders only; everything else is staff's. Field-level rules live in
`api.permissions`; this module only answers "who is calling".
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
    """

    def __init__(
        self,
        secret: str,
        *,
        max_ttl: int = DEFAULT_MAX_TTL,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
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

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller of an `Authorization` header value ("Bearer <token>"). Raises
        `Unauthenticated`."""
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
        if not isinstance(exp, int | float) or exp <= now:
            raise Unauthenticated("The token has expired.")
        if exp - now > self._max_ttl:
            raise Unauthenticated(
                f"The token expires too far ahead: this server accepts tokens valid for at most "
                f"{self._max_ttl} s (MAX_TOKEN_TTL); ask for a shorter-lived one."
            )
        return Principal(sub=sub, role=Role(role), expires_at=float(exp))
