"""Settings from the environment (CONTRACT section 3), read once at start-up, in one place.

Every variable any `orders` command or part reads is read here: the service's, the limits'
(through `api.http.limits`, handed this module's view of the environment), the persisted queries'
and the relay's `KAFKA_*`. Each value is checked by name (`api.settings.values`), and one the
service cannot use is refused with the form it accepts (`PORT must be a port number, got 'abc'`):
the CLI prints that one line and exits 2, before anything is opened.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from api.http.auth import DEFAULT_MAX_TTL
from api.http.limits import BudgetLimits, ConnectionLimits, QueryLimits, RequestLimits
from api.http.oidc import REFRESH_INTERVAL, IdentityProvider
from api.http.secret_strength import weakness
from api.settings.persisted_queries import PersistedQuerySettings
from api.settings.values import (
    MIN_SECRET_BYTES,
    SECRET_HINT,
    Getter,
    choice,
    claim_path,
    deadline,
    existing_file,
    flag,
    getter,
    host_name,
    listening_port,
    long_secret,
    parsed,
    port_number,
    provider_url,
    seconds,
    servers,
    topic_name,
    url,
    whole_at_least_1,
)
from api.settings.values import SettingsError as SettingsError
from api.settings.values import is_loopback as is_loopback
from application.snapshot_policy import DEFAULT_SNAPSHOT_EVERY
from eventstore.deadline import DEFAULT_STORE_TIMEOUT
from projections.redis_url import DEFAULT_REDIS_TIMEOUT, RedisUrlError
from projections.redis_url import SCHEMES as REDIS_URL_SCHEMES
from projections.redis_url import check_url as check_redis_url
from relay.config import DEFAULT_TOPIC, SASL_MECHANISMS, SECURITY_PROTOCOLS, KafkaSettings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HEALTH_DETAILS = ("staff", "open")
ESDB_SCHEMES = ("esdb://", "esdb+discover://")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
REDIS_SCHEMES = REDIS_URL_SCHEMES
LOG_FORMATS = ("logfmt", "json")
DEFAULT_SHUTDOWN_GRACE = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How the service runs (the limits: see `api.http.limits`).
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
    # JWT_ISSUER, JWT_JWKS_URL, JWT_AUDIENCE, JWT_ROLE_CLAIM, JWT_CUSTOMER_CLAIM (`api.http.oidc`)
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
    # LOG_FORMAT: "logfmt" or "json" (api.http.log_format)
    log_format: str = "logfmt"
    # SHUTDOWN_GRACE: seconds /readyz answers 503 after SIGTERM before the drain (api.http.shutdown)
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    # STORE_TIMEOUT, REDIS_TIMEOUT: seconds one event-store or Redis call on a request's path
    # may take before the answer is UNAVAILABLE (eventstore.deadline, projections.service)
    store_timeout: float = DEFAULT_STORE_TIMEOUT
    redis_timeout: float = DEFAULT_REDIS_TIMEOUT
    # PERSISTED_QUERIES, PERSISTED_QUERIES_MANIFEST (see `api.graphql.persisted_queries`)
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

    def __post_init__(self) -> None:
        # The one check of the pair, whichever way the settings were made.
        if self.esdb_url and self.database_url:
            raise SettingsError(
                "ESDB_URL and DATABASE_URL are both set: each names an event store; set only one "
                "(ESDB_URL: EventStoreDB, DATABASE_URL: PostgreSQL, neither: embedded)"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` (default: the process environment); unset or empty means
        the default. Raises `SettingsError` naming the first variable whose value is unusable
        and the form it accepts."""
        env = os.environ if environ is None else environ
        get = getter(env)
        jwt_secret, idempotency_secret = _secrets(get("JWT_SECRET"), get("IDEMPOTENCY_SECRET"))
        try:  # each names its variable (a limit, a persisted-query manifest)
            connection_limits = ConnectionLimits.from_env(env)
            query_limits = QueryLimits.from_env(env)
            request_limits = RequestLimits.from_env(env)
            budget_limits = BudgetLimits.from_env(env)
            persisted_queries = PersistedQuerySettings.from_env(env)
        except ValueError as error:
            raise SettingsError(str(error)) from None
        health_file = get("HEALTH_FILE")
        return cls(
            esdb_url=url("ESDB_URL", get("ESDB_URL"), ESDB_SCHEMES),
            database_url=url("DATABASE_URL", get("DATABASE_URL"), POSTGRES_SCHEMES),
            kafka=kafka_settings(env),
            data_dir=_data_dir(get("DATA_DIR")),
            redis_url=_redis_url(get("REDIS_URL")),
            jwt_secret=jwt_secret or secrets.token_urlsafe(32),
            jwt_secret_generated=jwt_secret is None,
            idempotency_secret=idempotency_secret,
            max_token_ttl=parsed(
                "MAX_TOKEN_TTL",
                get("MAX_TOKEN_TTL"),
                DEFAULT_MAX_TTL,
                whole_at_least_1,
                "a whole number of seconds, at least 1",
            ),
            identity_provider=_identity_provider(get),
            host=host_name("HOST", get("HOST"), "127.0.0.1"),
            port=parsed("PORT", get("PORT"), 8000, port_number, "a port number"),
            log_level=choice("LOG_LEVEL", get("LOG_LEVEL"), "INFO", LOG_LEVELS, str.upper),
            snapshot_every=parsed(
                "SNAPSHOT_EVERY",
                get("SNAPSHOT_EVERY"),
                DEFAULT_SNAPSHOT_EVERY,
                whole_at_least_1,
                "a whole number of events, at least 1",
            ),
            connection_limits=connection_limits,
            query_limits=query_limits,
            request_limits=request_limits,
            budget_limits=budget_limits,
            health_details=choice(
                "HEALTH_DETAILS", get("HEALTH_DETAILS"), "staff", HEALTH_DETAILS, str.lower
            ),
            health_file=Path(health_file) if health_file else None,
            metrics_port=_metrics_port(get("METRICS_PORT")),
            log_format=choice("LOG_FORMAT", get("LOG_FORMAT"), "logfmt", LOG_FORMATS, str.lower),
            shutdown_grace=seconds("SHUTDOWN_GRACE", get("SHUTDOWN_GRACE"), DEFAULT_SHUTDOWN_GRACE),
            persisted_queries=persisted_queries,
            store_timeout=deadline("STORE_TIMEOUT", get("STORE_TIMEOUT"), DEFAULT_STORE_TIMEOUT),
            redis_timeout=deadline("REDIS_TIMEOUT", get("REDIS_TIMEOUT"), DEFAULT_REDIS_TIMEOUT),
        )


def kafka_settings(environ: Mapping[str, str]) -> KafkaSettings | None:
    """The relay's settings from `environ` (`KAFKA_*`), or None when KAFKA_BOOTSTRAP_SERVERS is
    unset (no relay)."""
    get = getter(environ)
    bootstrap_servers = get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap_servers is None:
        return None
    protocol = choice(
        "KAFKA_SECURITY_PROTOCOL",
        get("KAFKA_SECURITY_PROTOCOL"),
        "PLAINTEXT",
        SECURITY_PROTOCOLS,
        str.upper,
    )
    mechanism = get("KAFKA_SASL_MECHANISM")
    if mechanism is not None:
        mechanism = choice("KAFKA_SASL_MECHANISM", mechanism, "", SASL_MECHANISMS, str.upper)
    if protocol.startswith("SASL_"):
        mechanism = mechanism or "PLAIN"
        if get("KAFKA_SASL_USERNAME") is None or get("KAFKA_SASL_PASSWORD") is None:
            raise SettingsError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
    whole_number = "a whole number, at least 1"
    return KafkaSettings(
        bootstrap_servers=servers("KAFKA_BOOTSTRAP_SERVERS", bootstrap_servers),
        topic=topic_name("KAFKA_TOPIC", get("KAFKA_TOPIC"), DEFAULT_TOPIC),
        idempotent=flag("KAFKA_IDEMPOTENT", get("KAFKA_IDEMPOTENT"), True),
        partitions=parsed(
            "KAFKA_PARTITIONS", get("KAFKA_PARTITIONS"), 6, whole_at_least_1, whole_number
        ),
        replication_factor=parsed(
            "KAFKA_REPLICATION_FACTOR",
            get("KAFKA_REPLICATION_FACTOR"),
            1,
            whole_at_least_1,
            whole_number,
        ),
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=get("KAFKA_SASL_USERNAME"),
        sasl_password=get("KAFKA_SASL_PASSWORD"),
        ssl_cafile=existing_file("KAFKA_SSL_CAFILE", get("KAFKA_SSL_CAFILE")),
        ssl_certfile=existing_file("KAFKA_SSL_CERTFILE", get("KAFKA_SSL_CERTFILE")),
        ssl_keyfile=existing_file("KAFKA_SSL_KEYFILE", get("KAFKA_SSL_KEYFILE")),
        client_id=get("KAFKA_CLIENT_ID") or "orders-relay",
        request_timeout_ms=parsed(
            "KAFKA_REQUEST_TIMEOUT_MS",
            get("KAFKA_REQUEST_TIMEOUT_MS"),
            30_000,
            whole_at_least_1,
            whole_number,
        ),
    )


def _secrets(jwt: str | None, idempotency: str | None) -> tuple[str | None, str | None]:
    """JWT_SECRET and IDEMPOTENCY_SECRET, each long enough, and not the same."""
    jwt_secret = long_secret("JWT_SECRET", jwt)
    idempotency_secret = long_secret("IDEMPOTENCY_SECRET", idempotency)
    if jwt_secret is not None and idempotency_secret == jwt_secret:
        raise SettingsError(
            "IDEMPOTENCY_SECRET must differ from JWT_SECRET: each guards something else, "
            f"and one leaking must not give away the other ({SECRET_HINT})"
        )
    return jwt_secret, idempotency_secret


def _data_dir(raw: str | None) -> Path:
    data_dir = Path(raw or "data")
    if data_dir.exists() and not data_dir.is_dir():
        raise SettingsError(f"DATA_DIR must be a directory, got {str(data_dir)!r} (a file)")
    return data_dir


def _metrics_port(raw: str | None) -> int | None:
    if raw is None:
        return None
    return parsed("METRICS_PORT", raw, 0, listening_port, "a port number, 1-65535")


def _redis_url(raw: str | None) -> str | None:
    redis_url = url("REDIS_URL", raw, REDIS_SCHEMES)
    if redis_url is not None:
        try:
            check_redis_url(redis_url)
        except RedisUrlError as error:
            raise SettingsError(str(error)) from None
    return redis_url


def _identity_provider(get: Getter) -> IdentityProvider | None:
    issuer = provider_url("JWT_ISSUER", get("JWT_ISSUER"))
    jwks_url = provider_url("JWT_JWKS_URL", get("JWT_JWKS_URL"))
    audience = get("JWT_AUDIENCE")
    role_claim = claim_path("JWT_ROLE_CLAIM", get("JWT_ROLE_CLAIM"), "role")
    customer_claim = claim_path("JWT_CUSTOMER_CLAIM", get("JWT_CUSTOMER_CLAIM"), "sub")
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
        refresh_interval=deadline(
            "JWT_JWKS_REFRESH_INTERVAL", get("JWT_JWKS_REFRESH_INTERVAL"), REFRESH_INTERVAL
        ),
    )
