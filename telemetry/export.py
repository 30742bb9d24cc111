"""The OTLP/HTTP span exporter, quiet about outages: one line when the collector stops taking
spans and one, with the count of spans lost, when it takes them again. Imported only when tracing
is on (`telemetry.tracing.start`).

The SDK's own loggers would say it per batch and per retry, and per span dropped from a full
queue (thousands of lines a second under load), so they are held to CRITICAL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger(__name__)

NOISY_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk._shared_internal",
)


class QuietOtlpExporter(SpanExporter):
    """`OTLPSpanExporter` (configured by the OTEL_EXPORTER_OTLP_* variables), logging once per
    outage."""

    def __init__(self) -> None:
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._inner = OTLPSpanExporter()
        self._lost = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export a batch; note the start and the end of an outage."""
        result = self._inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            if self._lost:
                logger.warning("event=trace_export_recovered spans_lost=%d", self._lost)
                self._lost = 0
        else:
            if not self._lost:
                logger.warning("event=trace_export_failed retrying=yes")
            self._lost += len(spans)
        return result

    def shutdown(self) -> None:
        """Stop the inner exporter."""
        self._inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here."""
        return self._inner.force_flush(timeout_millis)
