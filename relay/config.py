"""The relay's configuration (read from `KAFKA_*` by `api.settings.config`, the one reader of the
environment), and the client options it means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_TOPIC = "order-events"

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


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
