"""Settings from the environment (CONTRACT section 3), read once at start-up."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from api.limits import BudgetLimits, ConnectionLimits, QueryLimits, RequestLimits
from application.snapshot import DEFAULT_SNAPSHOT_EVERY

MIN_SECRET_BYTES = 32
"""HS256 keys shorter than the hash (32 bytes) can be brute-forced from one token (RFC 7518)."""


class SettingsError(ValueError):
    """A setting the service cannot run with; the message names it and says what to do."""


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (so only local users reach it)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


HEALTH_DETAILS = ("staff", "open")
LOG_FORMATS = ("logfmt", "json")
DEFAULT_SHUTDOWN_GRACE = 5.0
DEFAULT_STORE_TIMEOUT = 5.0
DEFAULT_REDIS_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How the service runs (the limits: see `api.limits`).
    `jwt_secret_generated` says the secret is random for this run, so
    nothing signed before a restart stays valid and ready-made tokens are logged at start (on a
    loopback HOST only: elsewhere `check_can_serve` refuses to start without a secret)."""

    esdb_url: str | None = None
    database_url: str | None = None  # DATABASE_URL: PostgreSQL (never together with ESDB_URL)
    redis_url: str | None = None
    data_dir: Path = Path("data")
    jwt_secret: str
    jwt_secret_generated: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY  # SNAPSHOT_EVERY: events between snapshots
    connection_limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    # What one request may ask for, and who may introspect (README "Request limits").
    query_limits: QueryLimits = field(default_factory=QueryLimits)
    request_limits: RequestLimits = field(default_factory=RequestLimits)
    # What one identity may hold or spend at once (README "Budgets").
    budget_limits: BudgetLimits = field(default_factory=BudgetLimits)
    # HEALTH_DETAILS: who sees /healthz's details (parts, head position): "staff" or "open"
    health_details: str = "staff"
    # LOG_FORMAT: "logfmt" or "json" (api.log_format)
    log_format: str = "logfmt"
    # SHUTDOWN_GRACE: seconds /readyz answers 503 after SIGTERM before the drain (api.shutdown)
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    # STORE_TIMEOUT, REDIS_TIMEOUT: seconds one event-store or Redis call on a request's path
    # may take before the answer is UNAVAILABLE (eventstore.deadline, projections.service)
    store_timeout: float = DEFAULT_STORE_TIMEOUT
    redis_timeout: float = DEFAULT_REDIS_TIMEOUT

    def check_can_serve(self) -> None:
        """Raise `SettingsError` when serving with these settings would be unsafe: without a
        JWT_SECRET on a HOST that others can reach (every token would be printed to the log
        and invalid after a restart)."""
        if self.jwt_secret_generated and not is_loopback(self.host):
            raise SettingsError(
                f"JWT_SECRET is not set and HOST={self.host} is not a loopback address: set "
                f"JWT_SECRET to a secret of at least {MIN_SECRET_BYTES} bytes (e.g. "
                "`openssl rand -hex 32`), or listen on 127.0.0.1 for a random one for this run."
            )

    @property
    def prints_ready_tokens(self) -> bool:
        """Whether start-up logs ready-made tokens: only for a random secret on loopback."""
        return self.jwt_secret_generated and is_loopback(self.host)

    @property
    def store_kind(self) -> str:
        """Which event store these settings select: eventstoredb, postgres or embedded."""
        if self.esdb_url:
            return "eventstoredb"
        return "postgres" if self.database_url else "embedded"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` (default: the process environment); unset or empty means
        the default. Raises `SettingsError` for a JWT_SECRET shorter than 32 bytes."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        if get("ESDB_URL") and get("DATABASE_URL"):
            raise SettingsError(
                "ESDB_URL and DATABASE_URL are both set: each names an event store; set only one "
                "(ESDB_URL: EventStoreDB, DATABASE_URL: PostgreSQL, neither: embedded)"
            )
        secret = get("JWT_SECRET")
        if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
            raise SettingsError(
                f"JWT_SECRET is {len(secret.encode())} bytes; it must be at least "
                f"{MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)."
            )
        try:
            connection_limits = ConnectionLimits.from_env(env)
            query_limits = QueryLimits.from_env(env)
            request_limits = RequestLimits.from_env(env)
            budget_limits = BudgetLimits.from_env(env)
        except ValueError as error:  # a limit that is not a positive number
            raise SettingsError(str(error)) from None
        port = get("PORT")
        snapshot_every = get("SNAPSHOT_EVERY")
        health_details = (get("HEALTH_DETAILS") or "staff").lower()
        if health_details not in HEALTH_DETAILS:
            raise SettingsError(
                f"HEALTH_DETAILS must be one of {HEALTH_DETAILS}, not {health_details!r}"
            )
        return cls(
            esdb_url=get("ESDB_URL"),
            database_url=get("DATABASE_URL"),
            redis_url=get("REDIS_URL"),
            data_dir=Path(get("DATA_DIR") or "data"),
            jwt_secret=secret or secrets.token_urlsafe(32),
            jwt_secret_generated=secret is None,
            host=get("HOST") or "127.0.0.1",
            port=int(port) if port else 8000,
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
            snapshot_every=int(snapshot_every) if snapshot_every else DEFAULT_SNAPSHOT_EVERY,
            connection_limits=connection_limits,
            query_limits=query_limits,
            request_limits=request_limits,
            budget_limits=budget_limits,
            health_details=health_details,
            log_format=log_format_of(get("LOG_FORMAT")),
            shutdown_grace=shutdown_grace_of(get("SHUTDOWN_GRACE")),
            store_timeout=timeout_of("STORE_TIMEOUT", get("STORE_TIMEOUT"), DEFAULT_STORE_TIMEOUT),
            redis_timeout=timeout_of("REDIS_TIMEOUT", get("REDIS_TIMEOUT"), DEFAULT_REDIS_TIMEOUT),
        )


def log_format_of(value: str | None) -> str:
    """LOG_FORMAT, checked: `logfmt` (unset) or `json`."""
    log_format = (value or "logfmt").lower()
    if log_format not in LOG_FORMATS:
        raise SettingsError(f"LOG_FORMAT must be one of {LOG_FORMATS}, not {value!r}")
    return log_format


def shutdown_grace_of(value: str | None) -> float:
    """SHUTDOWN_GRACE, checked: seconds, 0 or more (unset: 5)."""
    if value is None:
        return DEFAULT_SHUTDOWN_GRACE
    try:
        grace = float(value)
    except ValueError:
        grace = -1.0
    if not 0 <= grace < float("inf"):
        raise SettingsError(f"SHUTDOWN_GRACE must be a number of seconds, 0 or more, not {value!r}")
    return grace


def timeout_of(name: str, value: str | None, default: float) -> float:
    """A deadline setting (`name`), checked: seconds, more than 0 (unset: `default`)."""
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise SettingsError(f"{name} must be a number of seconds, more than 0, not {value!r}")
    return seconds
