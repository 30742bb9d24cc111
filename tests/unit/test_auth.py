"""Token issuing and verification: claims, expiry, signatures, the verified-token cache."""

from __future__ import annotations

import time

import jwt
import pytest

from api.http.auth import Authenticator, Forbidden, Principal, Role, Unauthenticated

SECRET = "unit-test-secret-" + "x" * 64  # HS512 below wants 64 bytes, or pyjwt warns


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_issued_token_authenticates_as_its_subject_and_role() -> None:
    auth = Authenticator(SECRET)
    principal = auth.authenticate("Bearer " + auth.issue(sub="c-1", role="customer"))
    assert (principal.sub, principal.role) == ("c-1", Role.CUSTOMER)
    assert not principal.is_staff
    assert principal.may_act_for("c-1")
    assert not principal.may_act_for("c-2")
    assert not principal.may_act_for(None)


def test_staff_may_act_for_anyone() -> None:
    staff = Principal(sub="s", role=Role.STAFF, expires_at=0)
    assert staff.may_act_for("c-9")


def test_the_scheme_is_case_insensitive() -> None:
    auth = Authenticator(SECRET)
    assert auth.authenticate("bearer " + auth.issue(sub="s", role="staff")).is_staff


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer not-a-jwt", "Token x.y.z"],
)
def test_missing_or_malformed_credentials_are_unauthenticated(header: str | None) -> None:
    with pytest.raises(Unauthenticated) as error:
        Authenticator(SECRET).authenticate(header)
    assert error.value.extensions == {"code": "UNAUTHENTICATED"}


def test_a_token_signed_with_another_secret_is_refused() -> None:
    other = Authenticator("another-secret-that-is-also-long-enough-x").issue(sub="s", role="staff")
    with pytest.raises(Unauthenticated):
        Authenticator(SECRET).authenticate(f"Bearer {other}")


def test_a_token_with_another_algorithm_is_refused() -> None:
    token = jwt.encode({"sub": "s", "role": "staff", "exp": 2**40}, SECRET, algorithm="HS512")
    with pytest.raises(Unauthenticated):
        Authenticator(SECRET).authenticate(f"Bearer {token}")


@pytest.mark.parametrize(
    "claims",
    [
        {"role": "staff", "exp": 2**40},
        {"sub": "s", "exp": 2**40},
        {"sub": "s", "role": "staff"},
        {"sub": "s", "role": "admin", "exp": 2**40},
        {"sub": "", "role": "staff", "exp": 2**40},
        {"sub": 7, "role": "staff", "exp": 2**40},
    ],
)
def test_tokens_without_valid_claims_are_refused(claims: dict[str, object]) -> None:
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated):
        Authenticator(SECRET).authenticate(f"Bearer {token}")


def test_an_expired_token_is_refused() -> None:
    clock = Clock()
    auth = Authenticator(SECRET, clock=clock)
    token = jwt.encode({"sub": "s", "role": "staff", "exp": int(clock.now) - 10}, SECRET)
    with pytest.raises(Unauthenticated, match="expired"):
        auth.authenticate(f"Bearer {token}")


def test_a_cached_token_still_expires() -> None:
    clock = Clock(now=time.time())
    auth = Authenticator(SECRET, clock=clock)
    header = "Bearer " + auth.issue(sub="s", role="staff", ttl=60)
    assert auth.authenticate(header).sub == "s"
    assert auth.authenticate(header).sub == "s"  # from the cache
    clock.now += 61
    with pytest.raises(Unauthenticated, match="expired"):
        auth.authenticate(header)


def test_the_cache_is_bounded() -> None:
    auth = Authenticator(SECRET, cache_size=2)
    tokens = [auth.issue(sub=f"c-{i}", role="customer") for i in range(5)]
    for token in tokens:
        assert auth.authenticate(f"Bearer {token}").sub.startswith("c-")
    assert len(auth._cache) == 2


def test_forbidden_carries_its_code() -> None:
    assert Forbidden().extensions == {"code": "FORBIDDEN"}
