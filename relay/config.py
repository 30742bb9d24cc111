"""The relay's configuration from the environment (`KAFKA_*`), and the producer options it means."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_TOPIC = "order-events"

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSettingsError(ValueError):
    """A `KAFKA_*` variable holds something the relay cannot use."""


def _flag(name: str, raw: str | None, default: bool) -> bool:
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise KafkaSettingsError(f"{name} must be true or false, got {raw!r}")


def _positive(name: str, raw: str | None, default: int) -> int:
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise KafkaSettingsError(f"{name} must be a whole number, at least 1, got {raw!r}")
    return int(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSettings:
    """Where and how the relay publishes."""

    bootstrap_servers: str
    topic: str = DEFAULT_TOPIC
    # The idempotent producer: the broker drops a retried batch it already has, so a producer
    # retry neither duplicates nor reorders an order's events.
    idempotent: bool = True
    # Created when missing (a broker's auto-creation would pick its own partition count).
    partitions: int = 6
    replication_factor: int = 1
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    client_id: str = "orders-relay"
    # How long a produce request (and a batch's delivery) may take before it counts as failed:
    # the relay then nacks the batch and reconnects.
    request_timeout_ms: int = 30_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaSettings | None:
        """The settings, or None when `KAFKA_BOOTSTRAP_SERVERS` is unset (no relay)."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        servers = get("KAFKA_BOOTSTRAP_SERVERS")
        if servers is None:
            return None
        protocol = (get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise KafkaSettingsError(
                f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"got {get('KAFKA_SECURITY_PROTOCOL')!r}"
            )
        mechanism = get("KAFKA_SASL_MECHANISM")
        if mechanism is not None:
            mechanism = mechanism.upper()
            if mechanism not in SASL_MECHANISMS:
                raise KafkaSettingsError(
                    f"KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
                    f"got {get('KAFKA_SASL_MECHANISM')!r}"
                )
        if protocol.startswith("SASL_"):
            mechanism = mechanism or "PLAIN"
            if get("KAFKA_SASL_USERNAME") is None or get("KAFKA_SASL_PASSWORD") is None:
                raise KafkaSettingsError(
                    f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and "
                    "KAFKA_SASL_PASSWORD"
                )
        return cls(
            bootstrap_servers=servers,
            topic=get("KAFKA_TOPIC") or DEFAULT_TOPIC,
            idempotent=_flag("KAFKA_IDEMPOTENT", get("KAFKA_IDEMPOTENT"), True),
            partitions=_positive("KAFKA_PARTITIONS", get("KAFKA_PARTITIONS"), 6),
            replication_factor=_positive(
                "KAFKA_REPLICATION_FACTOR", get("KAFKA_REPLICATION_FACTOR"), 1
            ),
            security_protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=get("KAFKA_SASL_USERNAME"),
            sasl_password=get("KAFKA_SASL_PASSWORD"),
            ssl_cafile=get("KAFKA_SSL_CAFILE"),
            ssl_certfile=get("KAFKA_SSL_CERTFILE"),
            ssl_keyfile=get("KAFKA_SSL_KEYFILE"),
            client_id=get("KAFKA_CLIENT_ID") or "orders-relay",
            request_timeout_ms=_positive(
                "KAFKA_REQUEST_TIMEOUT_MS", get("KAFKA_REQUEST_TIMEOUT_MS"), 30_000
            ),
        )

    def connection_options(self) -> dict[str, Any]:
        """The aiokafka options every client of the relay shares (producer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
        if self.security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    def producer_options(self) -> dict[str, Any]:
        """The producer's options: every in-sync replica acknowledges before an event is acked
        in the store, so an acked event survives a broker failing over."""
        return {
            **self.connection_options(),
            "acks": "all",
            "enable_idempotence": self.idempotent,
            # Batches per partition: the relay sends a whole delivery batch before awaiting it.
            "linger_ms": 5,
            "max_batch_size": 256 * 1024,
            "compression_type": None,
        }
