"""Secrets that anyone could guess, and tokens that never expire, are refused.

A documented sample or a low-entropy `JWT_SECRET` lets whoever reads the README mint staff
tokens; it stops `orders serve` off loopback (one line, exit 2) and is warned about on loopback.
A token whose `exp` lies further ahead than MAX_TOKEN_TTL is refused over HTTP and websockets,
and `orders token` cannot issue one.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from api.http.secret_strength import DOCUMENTED_SAMPLES, estimated_entropy_bits, weakness
from api.settings.config import Settings, SettingsError
from tests.e2e.ws import Protocol, WsRejected, graphql_ws
from tests.support.live_server import LiveServer, running_server
from tests.support.processes import REPO_ROOT, ServerProcess

README_SAMPLE = "a-demo-secret-of-at-least-32-bytes"
WEAK = [
    "a" * 32,
    "ab" * 16,
    "passwordpasswordpasswordpassword",
    "abcdefghijklmnopqrstuvwxyz012345",
    "12345678901234567890123456789012",
    README_SAMPLE,
]


def _run(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "HOST")}
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        cwd=REPO_ROOT,
        env={**clean, "DATA_DIR": str(tmp_path / "data"), "PORT": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("secret", WEAK)
def test_a_weak_or_documented_secret_is_refused_off_loopback(secret: str) -> None:
    settings = Settings.from_env({"HOST": "0.0.0.0", "JWT_SECRET": secret})
    with pytest.raises(SettingsError, match=r"JWT_SECRET is refused on HOST=0\.0\.0\.0"):
        settings.check_can_serve()
    loopback = Settings.from_env({"HOST": "127.0.0.1", "JWT_SECRET": secret})
    loopback.check_can_serve()
    assert any("JWT_SECRET" in warning for warning in loopback.secret_warnings())


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("a" * 32, "low-entropy"),
        (README_SAMPLE, "sample secret shown in this project's documentation"),
    ],
)
def test_serve_says_why_at_start_and_exits_2(secret: str, says: str, tmp_path: Path) -> None:
    done = _run(["serve"], {"HOST": "0.0.0.0", "JWT_SECRET": secret}, tmp_path)
    assert done.returncode == 2, done
    assert done.stderr.startswith("orders serve: JWT_SECRET is refused on HOST=0.0.0.0"), done
    assert says in done.stderr
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_a_weak_idempotency_secret_is_refused_too(tmp_path: Path) -> None:
    env = {"HOST": "0.0.0.0", "JWT_SECRET": secrets.token_hex(32), "IDEMPOTENCY_SECRET": "b" * 40}
    done = _run(["serve"], env, tmp_path)
    assert done.returncode == 2
    assert "IDEMPOTENCY_SECRET is refused" in done.stderr
    same = secrets.token_hex(32)
    with pytest.raises(SettingsError, match="must differ from JWT_SECRET"):
        Settings.from_env({"JWT_SECRET": same, "IDEMPOTENCY_SECRET": same})


def test_random_secrets_are_always_accepted() -> None:
    makers: dict[str, Callable[[], str]] = {
        "openssl rand -hex 32": lambda: secrets.token_hex(32),
        "openssl rand -base64 32": lambda: base64.b64encode(os.urandom(32)).decode(),
        "token_urlsafe(32)": lambda: secrets.token_urlsafe(32),
    }
    for name, make in makers.items():
        lowest = min(estimated_entropy_bits(make()) for _ in range(2000))
        assert lowest >= 150, (name, lowest)
        assert all(weakness(make()) is None for _ in range(200)), name


def test_every_secret_the_docs_show_is_a_refused_sample() -> None:
    """A new sample in a document must be added to the refused ones (or be a placeholder)."""
    documents = [
        REPO_ROOT / "README.md",
        *(REPO_ROOT / "docs").glob("*.md"),
        *REPO_ROOT.glob("docker-compose*.yml"),
        *REPO_ROOT.glob("examples/**/*.md"),
    ]
    shown = set()
    for document in documents:
        for match in re.finditer(
            r"(?:JWT|IDEMPOTENCY)_SECRET[=:]\s*([^\s`'\"]+)", document.read_text()
        ):
            value = match.group(1)
            if value.startswith(("$", "...", "<")):
                continue  # a shell substitution or a placeholder
            shown.add(value)
    assert shown <= DOCUMENTED_SAMPLES, shown - DOCUMENTED_SAMPLES
    # Samples an earlier README showed stay refused: their text is public for good.
    assert README_SAMPLE in DOCUMENTED_SAMPLES


def test_a_weak_secret_on_loopback_serves_with_a_warning(tmp_path: Path) -> None:
    with ServerProcess(
        data_dir=tmp_path / "data", jwt_secret="a" * 32, log_path=tmp_path / "server.log"
    ) as process:
        log = process.log_path.read_text()
    assert "event=weak_secret" in log
    assert "JWT_SECRET" in log
    assert "low-entropy" in log


# --- token lifetime --------------------------------------------------------------------------

MAX_TTL = 600


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server that accepts tokens valid for 10 minutes at most."""
    with running_server(
        tmp_path_factory.mktemp("token-ttl"), {"MAX_TOKEN_TTL": str(MAX_TTL)}
    ) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the test."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0, trust_env=False) as client:
        yield client


def _token(server: LiveServer, exp: int) -> str:
    claims = {"sub": "staff-ttl", "role": "staff", "exp": exp}
    return jwt.encode(claims, server.jwt_secret, algorithm="HS256")


YEAR_9999 = 253_402_300_799


# Named ids: a value computed from the clock would name the test differently in each xdist worker.
@pytest.mark.parametrize(
    "exp_ahead",
    [YEAR_9999 - int(time.time()), MAX_TTL + 120],
    ids=["until-year-9999", "max-ttl-plus-120s"],
)
async def test_a_token_living_longer_than_the_maximum_is_refused_over_http(
    http: httpx.AsyncClient, server: LiveServer, exp_ahead: int
) -> None:
    token = _token(server, int(time.time()) + exp_ahead)
    answer = await http.post(
        "/graphql",
        json={"query": "{ dashboardStats { totalOrders } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = answer.json()
    assert "data" not in body or body["data"] is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "at most 600 s (MAX_TOKEN_TTL)" in error["message"]
    fine = _token(server, int(time.time()) + MAX_TTL - 5)
    answer = await http.post(
        "/graphql",
        json={"query": "{ dashboardStats { totalOrders } }"},
        headers={"Authorization": f"Bearer {fine}"},
    )
    assert "totalOrders" in answer.text, answer.text


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_token_living_longer_than_the_maximum_is_refused_on_websockets(
    server: LiveServer, protocol: Protocol
) -> None:
    with pytest.raises(WsRejected) as refused:
        async with graphql_ws(server.ws_url, _token(server, YEAR_9999), protocol):
            pass
    assert refused.value.code in (4401, 4403, None), refused.value
    async with graphql_ws(server.ws_url, _token(server, int(time.time()) + 60), protocol):
        pass


def test_orders_token_cannot_issue_a_longer_one(tmp_path: Path) -> None:
    env = {"JWT_SECRET": secrets.token_hex(32), "MAX_TOKEN_TTL": "3600"}
    done = _run(["token", "--role", "staff", "--sub", "s", "--ttl", "3601"], env, tmp_path)
    assert done.returncode == 2
    assert "--ttl must be 1 to 3600 seconds (MAX_TOKEN_TTL" in done.stderr
    done = _run(["token", "--role", "staff", "--sub", "s", "--ttl", "3600"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), env["JWT_SECRET"], algorithms=["HS256"])
    assert claims["exp"] - time.time() <= 3600
    done = _run(
        ["token", "--role", "staff", "--sub", "s", "--ttl", "86401"],
        {"JWT_SECRET": env["JWT_SECRET"]},
        tmp_path,
    )
    assert done.returncode == 2  # the default maximum is a day
