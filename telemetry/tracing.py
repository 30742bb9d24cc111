"""Traces with the OpenTelemetry SDK, configured by OpenTelemetry's own environment variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, ...)
and exported over OTLP/HTTP.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or
`OTEL_TRACES_EXPORTER=otlp`) is set. Off, nothing of OpenTelemetry is imported and every helper
here is one `is None` test: the hot paths pay nothing measurable.

A trace crosses processes as a W3C `traceparent`: in the HTTP request's header, in each event's
metadata (`$traceparent`, written by the command's handler), in the change the projector
publishes to the API processes (for the websocket push), and in the Kafka message's headers.

On, what a span costs matters (six a command, against a command of well under a millisecond):
the spans are `telemetry.spans`' lean ones (the SDK's `ReadableSpan`, with the SDK provider's
resource, sampler and ids), the current one is kept in a ContextVar of ours, and each is
encoded to OTLP protobuf when it ends (`telemetry.otlp`) and sent in batches
(`telemetry.batch`, `telemetry.export`). `scripts/bench_tracing.py` measures it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from opentelemetry.trace import Span, SpanContext, SpanKind

    from telemetry.batch import EncodingBatchProcessor
    from telemetry.spans import LeanTracer

TRACEPARENT = "traceparent"
"""The W3C header (and Kafka header) name."""

METADATA_KEY = "$traceparent"
"""Where an event's metadata keeps the traceparent of the command that wrote it."""


@dataclass(frozen=True, slots=True)
class _Tracing:
    processor: EncodingBatchProcessor
    tracer: LeanTracer
    remote: Callable[[str], SpanContext | None]
    """`telemetry.spans.remote_parent`, imported once."""
    kinds: Mapping[str, SpanKind]


_active: _Tracing | None = None
"""The process's tracing once `start` found it configured. OpenTelemetry's tracer provider is
process-wide by design; this is its one holder, set by the composition root."""


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether OpenTelemetry's variables ask for traces to be exported."""
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if exporter == "otlp":
        return True
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def start(service_name: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Start exporting traces when OpenTelemetry's variables ask for it (`service_name` unless
    `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` names the service). True when on."""
    global _active
    if _active is not None or not wanted(environ):
        return _active is not None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanKind

    from telemetry.batch import EncodingBatchProcessor
    from telemetry.export import QuietOtlpExporter
    from telemetry.spans import LeanTracer, remote_parent

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), the batching from OTEL_BSP_*, the
    # endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*: the SDK reads them itself, from
    # the process's environment (`environ` only says whether to start).
    provider = TracerProvider(resource=resource)
    scope = InstrumentationScope("orders")
    processor = EncodingBatchProcessor(QuietOtlpExporter(), provider.resource, scope)
    _active = _Tracing(
        processor=processor,
        tracer=LeanTracer(provider, processor, scope, _current),
        remote=remote_parent,
        kinds={kind.name.lower(): kind for kind in SpanKind},
    )
    return True


def stop() -> None:
    """Export what is pending and stop (a no-op when off)."""
    global _active
    active, _active = _active, None
    if active is not None:
        active.processor.shutdown()


def enabled() -> bool:
    """Whether this process exports traces."""
    return _active is not None


_current: ContextVar[Span | None] = ContextVar("orders_current_span", default=None)
"""The span the running task is in (the tracer's: a span started by `span` is current while its
block runs). Ours rather than OpenTelemetry's context: setting a ContextVar costs a fraction of
`attach`/`detach`, and nothing else here reads the current span (no instrumentation library is
installed)."""


_OFF: Final = nullcontext()
"""What `span` gives when tracing is off (one, reused: it holds nothing)."""


def span(
    name: str,
    *,
    parent: str | None = None,
    kind: str = "internal",
    attributes: Mapping[str, str | int] | None = None,
) -> AbstractContextManager[Span | None]:
    """A span, current while the block runs: a child of `parent` (a traceparent) when given,
    else of the current span. Yields None when tracing is off."""
    active = _active
    if active is None:
        return _OFF
    tracer = active.tracer
    if parent:
        return tracer.start(name, active.remote(parent), active.kinds[kind], attributes)
    return tracer.start(name, kind=active.kinds[kind], attributes=attributes)


@contextmanager
def _detached(active: _Tracing, name: str, parent: str | None) -> Iterator[None]:
    tracer = active.tracer
    detached = tracer.start(name, active.remote(parent)) if parent else tracer.start(name)
    try:
        yield
    finally:
        detached.end()


def detached_span(name: str, parent: str | None) -> AbstractContextManager[None]:
    """A span that is never made current, for a block that suspends an async generator (a
    current span would leak into whoever resumes it): a child of `parent` when given, else of
    the current span."""
    active = _active
    if active is None:
        return nullcontext()
    return _detached(active, name, parent)


def _traceparent_of(one: Span) -> str | None:
    # A SpanContext is this tuple; its properties are a call each.
    trace_id, span_id, _, flags, _, valid = one.get_span_context()
    if not valid:
        return None
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def current_traceparent() -> str | None:
    """The current span's traceparent, None when tracing is off or no span is current."""
    current = _current.get()
    return None if current is None else _traceparent_of(current)


def current_trace_id() -> str:
    """The current span's trace id (32 hex digits), "" when tracing is off or none is current."""
    current = _current.get()
    if current is None:
        return ""
    context = current.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


_KEY: Final = METADATA_KEY.encode()
_KEY_IN_JSON = b'"' + _KEY + b'":"'
_TRACEPARENT_LENGTH = 55  # version 00: 2 + 1 + 32 + 1 + 16 + 1 + 2


def traceparent_in(metadata: bytes) -> str | None:
    """The `$traceparent` of an event's stored metadata, if it has one (read only when on)."""
    if _active is None or _KEY not in metadata:
        return None
    return metadata_traceparent(metadata)


def metadata_traceparent(metadata: bytes) -> str | None:
    """The `$traceparent` of an event's stored metadata (JSON), if it has one.

    The command's handler writes it as orjson writes a version-00 traceparent (`"$traceparent":"`
    then 55 characters that need no escaping), which is sliced out rather than parsed with the
    rest of the metadata: a projector reads one per event. Inside another JSON string the key's
    quotes would be escaped, so the slice is the key's own value; anything else (another writer's
    spacing, a longer or escaped value) is parsed."""
    at = metadata.find(_KEY_IN_JSON)
    if at >= 0:
        start = at + len(_KEY_IN_JSON)
        end = start + _TRACEPARENT_LENGTH
        sliced = metadata[start:end]
        plain = sliced.isascii() and b'"' not in sliced and b"\\" not in sliced
        if plain and metadata[end : end + 1] == b'"':
            return sliced.decode()
    import orjson

    value: Any = orjson.loads(metadata)
    found = value.get(METADATA_KEY) if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


class StoredEvent(Protocol):
    """What a projector's span needs of a stored event."""

    @property
    def type(self) -> str:
        """The event's type."""

    @property
    def metadata(self) -> bytes:
        """The event's stored metadata."""


class _ApplySpans:
    """The spans of `apply_spans`, ended when the block ends."""

    __slots__ = ("_spans",)

    def __init__(self, active: _Tracing, events: Sequence[StoredEvent]) -> None:
        start, remote = active.tracer.start, active.remote
        self._spans = []
        for event in events:
            parent = traceparent_in(event.metadata)
            self._spans.append(start(f"apply {event.type}", remote(parent) if parent else None))

    def __enter__(self) -> list[str]:
        return [_traceparent_of(one) or "" for one in self._spans]

    def __exit__(self, *_: object) -> None:
        for one in self._spans:
            one.end()


def apply_spans(events: Sequence[StoredEvent]) -> AbstractContextManager[list[str] | None]:
    """One span per event a projector applies while the block runs, each a child of the span
    that wrote the event (its metadata's `$traceparent`). Yields their traceparents ("" for
    none), to be published with the changes for the websocket push; None when tracing is off."""
    active = _active
    if active is None:
        return nullcontext()
    return _ApplySpans(active, events)
