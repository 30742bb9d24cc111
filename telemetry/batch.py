"""The span processor: ended spans queued and exported in batches by a thread, encoded to OTLP
protobuf there (`telemetry.otlp`), as the SDK's `BatchSpanProcessor` batches them and with its
settings (`OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
as the SDK reads them). Imported only when tracing is on.

Why not the SDK's: its encoder builds a protobuf message object per span, attribute and value
(`telemetry.otlp` writes the bytes directly, at a fraction of the cost), and its processor takes
a lock and copies each span. Why encode in the thread, a batch at a time, rather than on the
loop as each span ends: the same encoding costs less CPU run 512 times in a row than once amid
a request's other work, where its code and data are no longer in the CPU's caches
(`scripts/bench_tracing.py` measures it end to end). A batch's encoding holds the GIL under a
millisecond; the queue empties at each batch, so under load few spans wait for the garbage
collector to walk them.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace.export import BatchSpanProcessor

from telemetry.otlp import SpanCache, SpanEncoder, scope_span

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from telemetry.export import QuietOtlpExporter

logger = logging.getLogger(__name__)


def _batch_settings() -> tuple[int, int, int]:
    """OTEL_BSP_SCHEDULE_DELAY (ms), OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE as
    the SDK's `BatchSpanProcessor` reads them (its defaults, a bad value logged and ignored)."""
    read = BatchSpanProcessor
    return (
        int(read._default_schedule_delay_millis()),  # type: ignore[no-untyped-call]
        int(read._default_max_queue_size()),  # type: ignore[no-untyped-call]
        int(read._default_max_export_batch_size()),  # type: ignore[no-untyped-call]
    )


class EncodingBatchProcessor:
    """Takes the ended spans of one resource and instrumentation scope (one `LeanTracer`'s)
    and exports them in batches."""

    def __init__(
        self, exporter: QuietOtlpExporter, resource: Resource, scope: InstrumentationScope
    ) -> None:
        delay_ms, max_queue, max_batch = _batch_settings()
        self._delay_s = delay_ms / 1000
        self._max_queue = max(1, max_queue)
        self._max_batch = max(1, min(self._max_queue, max_batch))
        self._exporter = exporter
        self._encoder = SpanEncoder()
        self._resource = resource
        self._scope = scope
        self._cache = SpanCache()
        self._queue: deque[ReadableSpan] = deque()
        self._exporting = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="otlp-span-export", daemon=True)
        self._thread.start()

    def on_end(self, span: ReadableSpan) -> None:
        """Encode an ended span and queue it (dropped, and counted, when the queue is full)."""
        if self._stopping:
            return
        queue = self._queue
        queued = len(queue)
        if queued >= self._max_queue:
            self._dropped += 1
            return
        queue.append(span)
        if queued + 1 >= self._max_batch and not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            self._export_queued()
        self._export_queued()

    def _export_queued(self) -> None:
        queue, cache = self._queue, self._cache
        with self._exporting:
            while queue:
                count = min(len(queue), self._max_batch)
                batch = [scope_span(queue.popleft(), cache) for _ in range(count)]
                dropped, self._dropped = self._dropped, 0
                body = self._encoder.request(self._resource, self._scope, batch)
                self._exporter.send(body, count, dropped)

    def force_flush(self) -> None:
        """Export what is queued now (from the caller's thread)."""
        self._export_queued()

    def shutdown(self) -> None:
        """Export what is queued and stop the thread (and the exporter)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)
        self._exporter.shutdown()  # type: ignore[no-untyped-call]
