"""Settings from the environment (CONTRACT section 3), read once at start-up."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from domain.snapshots import DEFAULT_SNAPSHOT_EVERY


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How the service runs. `jwt_secret_generated` says the secret is random for this run, so
    nothing signed before a restart stays valid and ready-made tokens are logged at start."""

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

    @property
    def store_kind(self) -> str:
        """Which event store these settings select: eventstoredb, postgres or embedded."""
        if self.esdb_url:
            return "eventstoredb"
        return "postgres" if self.database_url else "embedded"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` (default: the process environment); unset or empty means
        the default."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        if get("ESDB_URL") and get("DATABASE_URL"):
            raise ValueError(
                "ESDB_URL and DATABASE_URL are both set: each names an event store; set only one "
                "(ESDB_URL: EventStoreDB, DATABASE_URL: PostgreSQL, neither: embedded)"
            )
        secret = get("JWT_SECRET")
        port = get("PORT")
        snapshot_every = get("SNAPSHOT_EVERY")
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
        )
