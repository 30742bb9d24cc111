"""Settings that keep the service safe to start: the token secret (at least 32 bytes; unset only
on loopback, where a random one serves this run and ready tokens are printed; anywhere else the
service refuses to start) and the connection limits."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api.settings.config import Settings, SettingsError, is_loopback
from tests.support.processes import REPO_ROOT, ServerProcess

LONG_ENOUGH = "s" * 32


def test_a_secret_shorter_than_32_bytes_is_refused() -> None:
    with pytest.raises(SettingsError, match="at least 32"):
        Settings.from_env({"JWT_SECRET": "s" * 31})
    # Bytes, not characters: 11 three-byte characters are 33 bytes.
    assert Settings.from_env({"JWT_SECRET": "€" * 11}).jwt_secret == "€" * 11
    assert Settings.from_env({"JWT_SECRET": LONG_ENOUGH}).jwt_secret == LONG_ENOUGH


def test_unset_on_loopback_serves_with_a_random_secret_and_ready_tokens() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        settings = Settings.from_env({"HOST": host})
        settings.check_can_serve()
        assert settings.jwt_secret_generated
        assert settings.prints_ready_tokens
        assert len(settings.jwt_secret.encode()) >= 32
    assert Settings.from_env({}).jwt_secret != Settings.from_env({}).jwt_secret


def test_unset_elsewhere_refuses_to_serve() -> None:
    for host in ("0.0.0.0", "::", "10.0.0.5", "orders.example.com"):
        settings = Settings.from_env({"HOST": host})
        assert not settings.prints_ready_tokens
        with pytest.raises(SettingsError, match="JWT_SECRET is not set"):
            settings.check_can_serve()


def test_a_set_secret_serves_anywhere_without_ready_tokens() -> None:
    settings = Settings.from_env({"HOST": "0.0.0.0", "JWT_SECRET": secrets.token_hex(32)})
    settings.check_can_serve()
    assert not settings.prints_ready_tokens


def test_loopback_detection() -> None:
    for host in ("127.0.0.1", "[::1]", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "192.168.1.2", "not an address"):
        assert not is_loopback(host), host


def _serve(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "HOST")}
    return subprocess.run(
        [sys.executable, "-m", "api", "serve"],
        cwd=REPO_ROOT,
        env={**clean, "DATA_DIR": str(tmp_path / "data"), "PORT": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"HOST": "0.0.0.0"}, "JWT_SECRET is not set and HOST=0.0.0.0"),
        ({"HOST": "127.0.0.1", "JWT_SECRET": "too-short"}, "it must be at least 32"),
    ],
    ids=["no-secret-off-loopback", "short-secret"],
)
def test_the_cli_refuses_to_start(env: dict[str, str], says: str, tmp_path: Path) -> None:
    done = _serve(env, tmp_path)
    assert done.returncode == 2, done
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # refused before opening anything


def test_a_loopback_server_without_a_secret_prints_working_tokens(tmp_path: Path) -> None:
    with ServerProcess(
        data_dir=tmp_path / "data", jwt_secret="", log_path=tmp_path / "server.log"
    ) as process:
        log = process.log_path.read_text()
        tokens = dict(re.findall(r"event=ready_token role=(\w+) sub=\S+ token=(\S+)", log))
        assert set(tokens) == {"staff", "customer"}
        answer = httpx.post(
            f"{process.url}/graphql",
            json={"query": "{ dashboardStats { totalOrders } }"},
            headers={"Authorization": f"Bearer {tokens['staff']}"},
            trust_env=False,
        )
    assert answer.json() == {"data": {"dashboardStats": {"totalOrders": 0}}}


def test_connection_limits_come_from_the_environment() -> None:
    limits = Settings.from_env(
        {
            "WS_INIT_TIMEOUT": "2.5",
            "HTTP_HEADER_TIMEOUT": "3",
            "HTTP_BODY_TIMEOUT": "4",
            "HTTP_KEEP_ALIVE_TIMEOUT": "6",
            "MAX_HTTP_CONNECTIONS": "50",
            "MAX_WEBSOCKETS": "70",
        }
    ).connection_limits
    assert (limits.ws_init_timeout, limits.http_header_timeout, limits.http_body_timeout) == (
        2.5,
        3.0,
        4.0,
    )
    assert (limits.http_keep_alive_timeout, limits.max_http_connections) == (6.0, 50)
    assert limits.max_websockets == 70
    defaults = Settings.from_env({}).connection_limits
    assert (defaults.ws_init_timeout, defaults.max_http_connections) == (5.0, 1000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WS_INIT_TIMEOUT", "0"),
        ("HTTP_BODY_TIMEOUT", "soon"),
        ("MAX_HTTP_CONNECTIONS", "2.5"),
        ("MAX_CONNECTIONS", "1000"),
        ("MAX_REQUESTS_PER_IDENTITY", "0"),
        ("COMMANDS_PER_SECOND", "fast"),
    ],
)
def test_a_limit_that_cannot_work_is_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


BAD_SETTINGS: list[tuple[str, str, str]] = [
    ("PORT", "abc", "PORT must be a port number, got 'abc'"),
    ("PORT", "70000", "PORT must be a port number, got '70000'"),
    (
        "LOG_LEVEL",
        "verbose",
        "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'verbose'",
    ),
    ("SNAPSHOT_EVERY", "0", "SNAPSHOT_EVERY must be a whole number of events, at least 1, got '0'"),
    ("SNAPSHOT_EVERY", "ten", "SNAPSHOT_EVERY must be a whole number of events, at least 1"),
    ("MAX_TOKEN_TTL", "1d", "MAX_TOKEN_TTL must be a whole number of seconds, at least 1"),
    ("HEALTH_DETAILS", "everyone", "HEALTH_DETAILS must be one of staff, open, got 'everyone'"),
    ("ESDB_URL", "http://localhost:2113", "ESDB_URL must be a URL starting with esdb://"),
    ("DATABASE_URL", "mysql://u:hunter2@db/orders", "DATABASE_URL must be a URL starting with"),
    ("REDIS_URL", "localhost:6379", "REDIS_URL must be a URL starting with redis://, rediss://"),
    ("JWT_SECRET", "short", "JWT_SECRET is 5 bytes; it must be at least 32"),
    ("IDEMPOTENCY_SECRET", "short", "IDEMPOTENCY_SECRET is 5 bytes; it must be at least 32"),
    ("MAX_CONNECTIONS", "many", "MAX_CONNECTIONS"),
    ("MAX_QUERY_COST", "-1", "MAX_QUERY_COST"),
    ("INTROSPECTION", "sometimes", "INTROSPECTION must be one of staff, all, off"),
    ("KAFKA_PARTITIONS", "six", "KAFKA_PARTITIONS must be a whole number, at least 1, got 'six'"),
    ("KAFKA_SECURITY_PROTOCOL", "TLS", "KAFKA_SECURITY_PROTOCOL must be one of PLAINTEXT"),
    ("KAFKA_IDEMPOTENT", "maybe", "KAFKA_IDEMPOTENT must be true or false, got 'maybe'"),
    ("JWT_ISSUER", "idp.example", "JWT_ISSUER must be an https:// URL"),
    ("JWT_ISSUER", "http://idp.example", "JWT_ISSUER must be an https:// URL"),
    ("JWT_ISSUER", "https://idp.example/realms/shop", "JWT_AUDIENCE must be set with JWT_ISSUER"),
    ("JWT_AUDIENCE", "https://orders.example", "JWT_AUDIENCE is set without JWT_ISSUER"),
    ("JWT_JWKS_URL", "https://idp.example/jwks", "JWT_JWKS_URL is set without JWT_ISSUER"),
]


@pytest.mark.parametrize(
    ("name", "value", "says"), BAD_SETTINGS, ids=[f"{n}={v}" for n, v, _ in BAD_SETTINGS]
)
def test_a_bad_setting_stops_serve_by_name(
    name: str, value: str, says: str, tmp_path: Path
) -> None:
    env = {"HOST": "127.0.0.1", name: value}
    if name.startswith("KAFKA_"):
        env["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"
    done = _serve(env, tmp_path)
    assert done.returncode == 2, done
    assert says in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # one line
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_a_refused_url_is_named_without_echoing_its_password(tmp_path: Path) -> None:
    done = _serve({"DATABASE_URL": "mysql://orders:hunter2@db/orders"}, tmp_path)
    assert done.returncode == 2
    assert "'mysql://...'" in done.stderr
    assert "hunter2" not in done.stderr


def test_every_setting_is_read_by_settings_alone() -> None:
    """No module but api/settings/config.py reads the environment: the limits, the persisted queries
    and the relay are handed what it read. Apart from it, three modules look at variables that
    belong to a library, which reads them itself: OpenTelemetry's OTEL_* (whether tracing is on;
    whether the exporter's credential provider needs its requests session) and
    prometheus-client's PROMETHEUS_MULTIPROC_DIR (read by the library at import)."""
    library_variables = {"telemetry/tracing.py", "telemetry/export.py", "metrics/exposition.py"}
    readers = {"api/settings/config.py", *library_variables}
    found = []
    packages = ("api", "application", "domain", "eventstore", "metrics", "projections", "relay")
    for package in (*packages, "telemetry"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            text = path.read_text()
            if re.search(r"os\.environ|os\.getenv|environ\[", text):
                found.append(str(path.relative_to(REPO_ROOT)))
    assert set(found) == readers, set(found) ^ readers  # the scan finds the one that does


def test_health_file_and_kafka_are_part_of_the_settings(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"HEALTH_FILE": str(tmp_path / "healthy"), "KAFKA_BOOTSTRAP_SERVERS": "k:9092"}
    )
    assert settings.health_file == tmp_path / "healthy"
    assert settings.kafka is not None
    assert settings.kafka.bootstrap_servers == "k:9092"
    assert Settings.from_env({}).kafka is None


KEYCLOAK = {
    "JWT_ISSUER": "https://keycloak.example/realms/shop",
    "JWT_AUDIENCE": "orders-api",
    "JWT_ROLE_CLAIM": "realm_access.roles",
}


def test_an_identity_provider_needs_no_secret_and_prints_no_tokens() -> None:
    settings = Settings.from_env({"HOST": "0.0.0.0", **KEYCLOAK})
    settings.check_can_serve()
    assert not settings.prints_ready_tokens
    provider = settings.identity_provider
    assert provider is not None
    assert (provider.issuer, provider.audience, provider.jwks_url) == (
        "https://keycloak.example/realms/shop",
        "orders-api",
        None,
    )
    assert (provider.role_claim, provider.customer_claim) == ("realm_access.roles", "sub")
    assert Settings.from_env({}).identity_provider is None


@pytest.mark.parametrize(
    ("name", "value"),
    [("JWT_ROLE_CLAIM", "realm_access..roles"), ("JWT_CUSTOMER_CLAIM", ".sub")],
)
def test_a_claim_path_with_an_empty_step_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"{name} must be a claim name or a dotted path"):
        Settings.from_env({**KEYCLOAK, name: value})


@pytest.mark.parametrize(
    "command", [["token", "--role", "staff", "--sub", "s"], ["demo", "--url", "http://127.0.0.1:1"]]
)
def test_tools_signing_with_the_secret_refuse_with_an_identity_provider(
    command: list[str],
) -> None:
    env = {**os.environ, **KEYCLOAK, "JWT_SECRET": secrets.token_hex(32)}
    done = subprocess.run(
        [sys.executable, "-m", "api", *command],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "JWT_ISSUER is set" in done.stderr
