"""Settings from the environment (CONTRACT section 3), read once at start-up."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from domain.snapshots import DEFAULT_SNAPSHOT_EVERY

HEALTH_DETAILS = ("staff", "open")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How the service runs. `jwt_secret_generated` says the secret is random for this run, so
    nothing signed before a restart stays valid and ready-made tokens are logged at start."""

    esdb_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path("data")
    jwt_secret: str
    jwt_secret_generated: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY  # SNAPSHOT_EVERY: events between snapshots
    # HEALTH_DETAILS: who sees /healthz's details (parts, head position): "staff" or "open"
    health_details: str = "staff"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` (default: the process environment); unset or empty means
        the default."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        secret = get("JWT_SECRET")
        port = get("PORT")
        snapshot_every = get("SNAPSHOT_EVERY")
        health_details = (get("HEALTH_DETAILS") or "staff").lower()
        if health_details not in HEALTH_DETAILS:
            raise ValueError(
                f"HEALTH_DETAILS must be one of {HEALTH_DETAILS}, not {health_details!r}"
            )
        return cls(
            esdb_url=get("ESDB_URL"),
            redis_url=get("REDIS_URL"),
            data_dir=Path(get("DATA_DIR") or "data"),
            jwt_secret=secret or secrets.token_urlsafe(32),
            jwt_secret_generated=secret is None,
            host=get("HOST") or "127.0.0.1",
            port=int(port) if port else 8000,
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
            snapshot_every=int(snapshot_every) if snapshot_every else DEFAULT_SNAPSHOT_EVERY,
            health_details=health_details,
        )
