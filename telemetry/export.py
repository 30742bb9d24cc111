"""The OTLP/HTTP span exporter: OpenTelemetry's (endpoint, headers, timeout, compression and
retries from the OTEL_EXPORTER_OTLP_* variables), with spans encoded by `telemetry.otlp` (a
fraction of the cost of the exporter's own encoder, in a thread that holds the GIL meanwhile),
and quiet about outages: one line when the collector stops taking spans and one, with the count
of spans lost, when it takes them again. Imported only when tracing is on
(`telemetry.tracing.start`).

The SDK's own loggers would say it per batch and per retry, and per span dropped from a full
queue (thousands of lines a second under load), so they are held to CRITICAL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from telemetry.otlp import SpanEncoder

logger = logging.getLogger(__name__)

NOISY_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk._shared_internal",
)


class QuietOtlpExporter(OTLPSpanExporter):
    """`OTLPSpanExporter` (configured by the OTEL_EXPORTER_OTLP_* variables) sending the bytes
    of `SpanEncoder`, logging once per outage."""

    def __init__(self) -> None:
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        super().__init__()
        self._encoder = SpanEncoder()
        self._lost = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Encode and send a batch (the exporter's HTTP client retries); note the start and the
        end of an outage."""
        if self._shutdown:
            return SpanExportResult.FAILURE
        # The client is the exporter's own (its `export` would encode with the slow encoder).
        if self._client.export(self._encoder.encode(spans)).success:
            if self._lost:
                logger.warning("event=trace_export_recovered spans_lost=%d", self._lost)
                self._lost = 0
            return SpanExportResult.SUCCESS
        if not self._lost:
            logger.warning("event=trace_export_failed retrying=yes")
        self._lost += len(spans)
        return SpanExportResult.FAILURE
