"""Settings from the environment (CONTRACT section 3), read once at start-up, in one place.

Every variable any `orders` command reads is read here (the limits through `api.limits`, the
relay's `KAFKA_*` through `relay.config`), and a value the service cannot use is refused by name
with the form it accepts (`PORT must be a port number, got 'abc'`): the CLI prints that one line
and exits 2, before anything is opened.
"""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from api.auth import DEFAULT_MAX_TTL
from api.limits import BudgetLimits, ConnectionLimits, QueryLimits, RequestLimits
from api.oidc import IdentityProvider
from api.persisted_queries import PersistedQuerySettings
from api.secret_strength import weakness
from application.snapshot import DEFAULT_SNAPSHOT_EVERY
from projections.redis_url import SCHEMES as REDIS_URL_SCHEMES
from projections.redis_url import RedisUrlError
from projections.redis_url import check_url as check_redis_url
from relay.config import KafkaSettings, KafkaSettingsError

MIN_SECRET_BYTES = 32
"""HS256 keys shorter than the hash (32 bytes) can be brute-forced from one token (RFC 7518)."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HEALTH_DETAILS = ("staff", "open")
ESDB_SCHEMES = ("esdb://", "esdb+discover://")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
REDIS_SCHEMES = REDIS_URL_SCHEMES
SECRET_HINT = "e.g. `openssl rand -hex 32`"


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
    # IDEMPOTENCY_SECRET: keys the ids derived from idempotency keys; unset, the event store
    # keeps one for the deployment (application.idempotency_secret).
    idempotency_secret: str | None = None
    max_token_ttl: int = DEFAULT_MAX_TTL
    # JWT_ISSUER, JWT_JWKS_URL, JWT_AUDIENCE, JWT_ROLE_CLAIM, JWT_CUSTOMER_CLAIM (`api.oidc`)
    identity_provider: IdentityProvider | None = None
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
    # PERSISTED_QUERIES, PERSISTED_QUERIES_MANIFEST (see `api.persisted_queries`)
    persisted_queries: PersistedQuerySettings = field(default_factory=PersistedQuerySettings)

    # HEALTH_FILE: touched while `orders project` / `orders relay kafka` workers run
    health_file: Path | None = None
    # KAFKA_*: where the relay publishes; None without KAFKA_BOOTSTRAP_SERVERS
    kafka: KafkaSettings | None = None
    # METRICS_PORT: /metrics also served there on HOST, without auth (`metrics.exposition`)
    metrics_port: int | None = None

    def _configured_secrets(self) -> list[tuple[str, str]]:
        named = [] if self.jwt_secret_generated else [("JWT_SECRET", self.jwt_secret)]
        if self.idempotency_secret is not None:
            named.append(("IDEMPOTENCY_SECRET", self.idempotency_secret))
        return named

    def check_can_serve(self) -> None:
        """Raise `SettingsError` when serving with these settings would be unsafe on a HOST
        others can reach: no JWT_SECRET (every token would be printed to the log and invalid
        after a restart), or a secret that is a documented sample or looks low-entropy."""
        if is_loopback(self.host):
            return
        if self.jwt_secret_generated and self.identity_provider is None:
            raise SettingsError(
                f"JWT_SECRET is not set and HOST={self.host} is not a loopback address: set "
                f"JWT_SECRET to a secret of at least {MIN_SECRET_BYTES} bytes ({SECRET_HINT}), "
                "or listen on 127.0.0.1 for a random one for this run."
            )
        for name, secret in self._configured_secrets():
            reason = weakness(secret)
            if reason is not None:
                raise SettingsError(
                    f"{name} is refused on HOST={self.host} (not a loopback address): {reason}. "
                    f"Set it to random bytes ({SECRET_HINT})."
                )

    def secret_warnings(self) -> list[str]:
        """What is weak about the secrets when serving on loopback (where it is allowed)."""
        warnings = []
        for name, secret in self._configured_secrets():
            reason = weakness(secret)
            if reason is not None:
                warnings.append(f"{name}: {reason}; it would be refused off loopback")
        return warnings

    @property
    def prints_ready_tokens(self) -> bool:
        """Whether start-up logs ready-made tokens: only for a random secret on loopback, and
        never with an identity provider (which refuses them)."""
        return (
            self.jwt_secret_generated and is_loopback(self.host) and self.identity_provider is None
        )

    @property
    def store_kind(self) -> str:
        """Which event store these settings select: eventstoredb, postgres or embedded."""
        if self.esdb_url:
            return "eventstoredb"
        return "postgres" if self.database_url else "embedded"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` (default: the process environment); unset or empty means
        the default. Raises `SettingsError` naming the first variable whose value is unusable
        and the form it accepts."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        esdb_url = _url("ESDB_URL", get("ESDB_URL"), ESDB_SCHEMES)
        database_url = _url("DATABASE_URL", get("DATABASE_URL"), POSTGRES_SCHEMES)
        if esdb_url and database_url:
            raise SettingsError(
                "ESDB_URL and DATABASE_URL are both set: each names an event store; set only one "
                "(ESDB_URL: EventStoreDB, DATABASE_URL: PostgreSQL, neither: embedded)"
            )
        secret = _secret("JWT_SECRET", get("JWT_SECRET"))
        idempotency_secret = _secret("IDEMPOTENCY_SECRET", get("IDEMPOTENCY_SECRET"))
        if secret is not None and idempotency_secret == secret:
            raise SettingsError(
                "IDEMPOTENCY_SECRET must differ from JWT_SECRET: each guards something else, "
                f"and one leaking must not give away the other ({SECRET_HINT})"
            )
        try:
            connection_limits = ConnectionLimits.from_env(env)
            query_limits = QueryLimits.from_env(env)
            request_limits = RequestLimits.from_env(env)
            budget_limits = BudgetLimits.from_env(env)
            persisted_queries = PersistedQuerySettings.from_env(env)
            kafka = KafkaSettings.from_env(env)
        except (ValueError, KafkaSettingsError) as error:  # each names its variable (a limit, a
            # persisted-query manifest, a Kafka setting)
            raise SettingsError(str(error)) from None
        data_dir = Path(get("DATA_DIR") or "data")
        if data_dir.exists() and not data_dir.is_dir():
            raise SettingsError(f"DATA_DIR must be a directory, got {str(data_dir)!r} (a file)")
        health_file = get("HEALTH_FILE")
        metrics_port = get("METRICS_PORT")
        return cls(
            esdb_url=esdb_url,
            database_url=database_url,
            redis_url=_redis_url(get("REDIS_URL")),
            data_dir=data_dir,
            jwt_secret=secret or secrets.token_urlsafe(32),
            jwt_secret_generated=secret is None,
            idempotency_secret=idempotency_secret,
            max_token_ttl=_parsed(
                "MAX_TOKEN_TTL",
                get("MAX_TOKEN_TTL"),
                DEFAULT_MAX_TTL,
                _whole_at_least_1,
                "a whole number of seconds, at least 1",
            ),
            identity_provider=_identity_provider(get),
            host=get("HOST") or "127.0.0.1",
            port=_parsed("PORT", get("PORT"), 8000, _port_number, "a port number"),
            log_level=_choice("LOG_LEVEL", get("LOG_LEVEL"), "INFO", LOG_LEVELS, str.upper),
            snapshot_every=_parsed(
                "SNAPSHOT_EVERY",
                get("SNAPSHOT_EVERY"),
                DEFAULT_SNAPSHOT_EVERY,
                _whole_at_least_1,
                "a whole number of events, at least 1",
            ),
            connection_limits=connection_limits,
            query_limits=query_limits,
            request_limits=request_limits,
            budget_limits=budget_limits,
            health_details=_choice(
                "HEALTH_DETAILS", get("HEALTH_DETAILS"), "staff", HEALTH_DETAILS, str.lower
            ),
            health_file=Path(health_file) if health_file else None,
            kafka=kafka,
            metrics_port=None
            if metrics_port is None
            else _parsed(
                "METRICS_PORT", metrics_port, 0, _listening_port, "a port number, 1-65535"
            ),
            log_format=_choice("LOG_FORMAT", get("LOG_FORMAT"), "logfmt", LOG_FORMATS, str.lower),
            shutdown_grace=_seconds(
                "SHUTDOWN_GRACE", get("SHUTDOWN_GRACE"), DEFAULT_SHUTDOWN_GRACE
            ),
            persisted_queries=persisted_queries,
            store_timeout=_deadline("STORE_TIMEOUT", get("STORE_TIMEOUT"), DEFAULT_STORE_TIMEOUT),
            redis_timeout=_deadline("REDIS_TIMEOUT", get("REDIS_TIMEOUT"), DEFAULT_REDIS_TIMEOUT),
        )


def _identity_provider(get: Callable[[str], str | None]) -> IdentityProvider | None:
    issuer = _provider_url("JWT_ISSUER", get("JWT_ISSUER"))
    jwks_url = _provider_url("JWT_JWKS_URL", get("JWT_JWKS_URL"))
    audience = get("JWT_AUDIENCE")
    role_claim = _claim_path("JWT_ROLE_CLAIM", get("JWT_ROLE_CLAIM"), "role")
    customer_claim = _claim_path("JWT_CUSTOMER_CLAIM", get("JWT_CUSTOMER_CLAIM"), "sub")
    if issuer is None:
        others = ("JWT_JWKS_URL", "JWT_AUDIENCE", "JWT_ROLE_CLAIM", "JWT_CUSTOMER_CLAIM")
        named = [name for name in others if get(name) is not None]
        if named:
            raise SettingsError(
                f"{named[0]} is set without JWT_ISSUER: set JWT_ISSUER to the identity "
                "provider's issuer URL (its tokens' `iss`), or unset the JWT_* provider settings"
            )
        return None
    if audience is None:
        # Without it, a token the provider issued for any other application would be taken.
        raise SettingsError(
            "JWT_AUDIENCE must be set with JWT_ISSUER: the audience (`aud`) the provider puts "
            "in tokens for this API, e.g. https://orders.example/graphql"
        )
    return IdentityProvider(
        issuer=issuer,
        audience=audience,
        jwks_url=jwks_url,
        role_claim=role_claim,
        customer_claim=customer_claim,
    )


def _provider_url(name: str, raw: str | None) -> str | None:
    """https only, except on a loopback host (a provider started beside the service)."""
    if raw is None:
        return None
    scheme, sep, rest = raw.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if sep and scheme.lower() == "https" and host:
        return raw
    if sep and scheme.lower() == "http" and host and is_loopback(host):
        return raw
    raise SettingsError(
        f"{name} must be an https:// URL (http:// only on a loopback host), got {raw!r}"
    )


def _claim_path(name: str, raw: str | None, default: str) -> str:
    if raw is None:
        return default
    if raw.startswith("http") or all(raw.split(".")):
        return raw
    raise SettingsError(
        f"{name} must be a claim name or a dotted path to one (e.g. realm_access.roles), "
        f"got {raw!r}"
    )


def _secret(name: str, value: str | None) -> str | None:
    if value is not None and len(value.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"{name} is {len(value.encode())} bytes; it must be at least "
            f"{MIN_SECRET_BYTES} ({SECRET_HINT})."
        )
    return value


def _port_number(raw: str) -> int | None:
    value = _whole(raw)
    return value if value is not None and 0 <= value <= 65_535 else None


def _listening_port(raw: str) -> int | None:
    value = _port_number(raw)
    return value if value else None


def _whole(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _whole_at_least_1(raw: str) -> int | None:
    value = _whole(raw)
    return value if value is not None and value >= 1 else None


def _parsed(
    name: str,
    raw: str | None,
    default: int,
    parse: Callable[[str], int | None],
    form: str,
) -> int:
    if raw is None:
        return default
    value = parse(raw)
    if value is None:
        raise SettingsError(f"{name} must be {form}, got {raw!r}")
    return value


def _choice(
    name: str,
    raw: str | None,
    default: str,
    accepted: tuple[str, ...],
    normal: Callable[[str], str],
) -> str:
    if raw is None:
        return default
    if normal(raw) not in accepted:
        raise SettingsError(f"{name} must be one of {', '.join(accepted)}, got {raw!r}")
    return normal(raw)


def _url(name: str, raw: str | None, schemes: tuple[str, ...]) -> str | None:
    if raw is not None and not raw.lower().startswith(schemes):
        # Only the scheme is echoed: the rest of a URL may hold a password.
        scheme, sep, _ = raw.partition("://")
        shown = repr(f"{scheme}://...") if sep else "a value with no scheme"
        starts = ", ".join(schemes)
        raise SettingsError(f"{name} must be a URL starting with {starts}, got {shown}")
    return raw


def _redis_url(raw: str | None) -> str | None:
    url = _url("REDIS_URL", raw, REDIS_SCHEMES)
    if url is not None:
        try:
            check_redis_url(url)
        except RedisUrlError as error:
            raise SettingsError(str(error)) from None
    return url


def _seconds(name: str, raw: str | None, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < math.inf:
        raise SettingsError(f"{name} must be a number of seconds, 0 or more, got {raw!r}")
    return value


def _deadline(name: str, raw: str | None, default: float) -> float:
    """A deadline setting: seconds, more than 0 (unset: `default`)."""
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < math.inf:
        raise SettingsError(f"{name} must be a number of seconds, more than 0, got {raw!r}")
    return value
