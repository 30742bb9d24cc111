"""The OTLP/HTTP span exporter: OpenTelemetry's (endpoint, headers, timeout, compression and
retries from the OTEL_EXPORTER_OTLP_* variables), sending the requests `telemetry.batch`
encoded (a fraction of the cost of the exporter's own encoder), and quiet about outages: one
line when the collector stops taking spans and one, with the count of spans lost, when it takes
them again. Imported only when tracing is on (`telemetry.tracing.start`).

The SDK's own loggers would say it per batch and per retry (thousands of lines a second under
load), so they are held to CRITICAL.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from requests.utils import get_environ_proxies, select_proxy

from telemetry.transport import DirectTransport

logger = logging.getLogger(__name__)

NOISY_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk._shared_internal",
)


CREDENTIAL_PROVIDERS = (
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
)


def direct(endpoint: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the spans can go straight to `endpoint` (`telemetry.transport`): plain HTTP, no
    proxy that requests would use for it (HTTP_PROXY, ALL_PROXY, NO_PROXY), no credential
    provider's session. Otherwise the exporter keeps its requests session, which does those."""
    if not endpoint.startswith("http://"):
        return False
    if any(environ.get(name) for name in CREDENTIAL_PROVIDERS):
        return False
    return select_proxy(endpoint, get_environ_proxies(endpoint)) is None


class QuietOtlpExporter(OTLPSpanExporter):
    """`OTLPSpanExporter` (configured by the OTEL_EXPORTER_OTLP_* variables) sending requests
    encoded already (`telemetry.batch`), logging once per outage."""

    def __init__(self) -> None:
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        super().__init__()
        self._lost = 0
        if direct(self._endpoint):
            self._client._transport.close()
            self._client._transport = DirectTransport()

    def send(self, body: bytes, spans: int, dropped: int = 0) -> bool:
        """Send one ExportTraceServiceRequest of `spans` spans (the exporter's HTTP client
        retries); `dropped` more were lost before it (a full queue). Notes the start and the end
        of an outage."""
        # The client is the exporter's own: its `export` would encode the spans again.
        if not self._shutdown and self._client.export(body).success:
            lost = self._lost + dropped
            if lost:
                logger.warning("event=trace_export_recovered spans_lost=%d", lost)
                self._lost = 0
            return True
        if not self._lost:
            logger.warning("event=trace_export_failed retrying=yes")
        self._lost += spans + dropped
        return False
