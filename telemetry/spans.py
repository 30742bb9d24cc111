"""Lean spans for the OpenTelemetry SDK's pipeline. Imported only when tracing is on.

The SDK's own span costs tens of µs to start and end (a lock, bounded containers for attributes,
events and links, a copy of itself for the processors): with the six spans a command makes,
more than the 10% of a command's cost that tracing may take. `LeanTracer` starts spans that are
the SDK's `ReadableSpan` and OpenTelemetry's `Span` at a fraction of that, with everything else
from the SDK's `TracerProvider`, configured by OpenTelemetry's variables: its resource
(`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), its sampler (`OTEL_TRACES_SAMPLER`, `_ARG`)
and its id generator; the spans go through the SDK's `BatchSpanProcessor` (`OTEL_BSP_*`) to the
OTLP exporter (`telemetry.export`).

What it leaves out, as the service needs none of it: span limits (`OTEL_SPAN_*_LIMIT`: a span
here has at most three attributes and no events or links) and on-start processors (the
processor sees a span when it ends).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from enum import Enum
from random import getrandbits
from time import time_ns
from typing import TYPE_CHECKING, Final, Literal, Protocol

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util.types import AnyValue, Attributes

from telemetry.otlp import UNSET

if TYPE_CHECKING:
    from opentelemetry.trace import Link


class EndedSpans(Protocol):
    """Where a span goes when it ends (a span processor's `on_end`)."""

    def on_end(self, span: ReadableSpan) -> None:
        """Take an ended span."""


_TRACEPARENT: Final = re.compile(
    r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?[ \t]*"
)
_TRACEPARENT_MAX: Final = 512
_NO_TRACE: Final = "0" * 32
_NO_SPAN: Final = "0" * 16
_FLAGS: Final = [TraceFlags(value) for value in range(4)]  # sampled (1), random trace id (2)
_NO_STATE: Final = DEFAULT_TRACE_STATE
_TRACE_ID_MAX: Final = (1 << 128) - 1
_SPAN_ID_MAX: Final = (1 << 64) - 1


CurrentSpan = ContextVar["trace.Span | None"]
"""Where the running task's current span is kept (`telemetry.tracing` owns the process's)."""


class _Current(trace.Span):
    """As a context manager, a started span is the current one while the block runs, then ends:
    what `start_as_current_span` does, without its generator-based context managers, and with a
    ContextVar of the tracer's rather than OpenTelemetry's context (most of a span's cost)."""

    _current: CurrentSpan
    _token: Token[trace.Span | None]

    def __enter__(self) -> trace.Span:
        self._token = self._current.set(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: object
    ) -> None:
        if error is not None and not isinstance(error, GeneratorExit):
            self.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        self._current.reset(self._token)
        self.end()


class LeanSpan(_Current, ReadableSpan):
    """A recording span: OpenTelemetry's `Span` while open, the SDK's `ReadableSpan` (itself,
    no copy) for the processor once ended. Used by one task at a time, so no lock."""

    # ReadableSpan's fields that every span here has alike, as class attributes rather than
    # set on each span: its __init__ sets them all, a measurable part of a span's cost.
    # `LeanTracer` makes a subclass holding its resource, scope, processor and current-span
    # variable.
    _instrumentation_info = None
    _end_time: int | None = None
    _events = ()
    _links = ()
    _status = UNSET
    _processor: EndedSpans

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, AnyValue],
    ) -> None:
        # The rest of ReadableSpan's fields, named as its __init__ names them;
        # tests/integration/test_lean_spans.py reads them back through its properties.
        self._name = name
        self._context = context
        self._kind = kind
        self._parent = parent
        self._attributes = attributes
        self._start_time: int | None = time_ns()

    def end(self, end_time: int | None = None) -> None:
        """End the span (once) and hand it to the processor."""
        if self._end_time is None:
            self._end_time = end_time if end_time is not None else time_ns()
            self._processor.on_end(self)

    def get_span_context(self) -> SpanContext:
        """The span's ids and flags."""
        return self._context  # type: ignore[return-value]  # always set here

    def set_attributes(self, attributes: Mapping[str, AnyValue]) -> None:
        """Add attributes (ignored once ended, as the SDK's)."""
        if self._end_time is None:
            self._attributes.update(attributes)  # type: ignore[union-attr]  # a dict

    def set_attribute(self, key: str, value: AnyValue) -> None:
        """Add an attribute (ignored once ended)."""
        if self._end_time is None:
            self._attributes[key] = value  # type: ignore[index]  # a dict

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        """Events are not kept (the service adds none)."""

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        """Links are not kept (the service adds none)."""

    def update_name(self, name: str) -> None:
        """Rename the span (ignored once ended)."""
        if self._end_time is None:
            self._name = name

    def is_recording(self) -> bool:
        """Whether the span is still open."""
        return self._end_time is None

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the status, as the SDK does: OK is final, UNSET never replaces another."""
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """Exceptions become the status (`set_status`), not events."""


class UnsampledSpan(_Current, NonRecordingSpan):
    """A span the sampler dropped: it only carries its context to its children (current while
    its block runs, as a recording one is)."""


class _Parent(Enum):
    CURRENT = "current"


CURRENT: Final = _Parent.CURRENT
"""`LeanTracer.start`'s default parent: the current span (a root span when there is none)."""


class LeanTracer:
    """Starts `LeanSpan`s with the provider's resource, sampler and id generator, ending into
    `processor`. A span's parent is a span context (local or remote) given, else the span
    current in `current` (the ContextVar its spans set while their blocks run)."""

    def __init__(
        self,
        provider: TracerProvider,
        processor: EndedSpans,
        scope: InstrumentationScope,
        current: CurrentSpan | None = None,
    ) -> None:
        self.resource = provider.resource
        self.scope = scope
        self.processor = processor
        self.current: CurrentSpan = current or ContextVar("lean_current_span", default=None)
        self._span: type[LeanSpan] = type(
            "LeanSpan",
            (LeanSpan,),
            {
                "__module__": __name__,
                "_resource": provider.resource,
                "_instrumentation_scope": scope,
                "_processor": processor,
                "_current": self.current,
            },
        )
        self._unsampled: type[UnsampledSpan] = type(
            "UnsampledSpan", (UnsampledSpan,), {"__module__": __name__, "_current": self.current}
        )
        self._sampler = provider.sampler
        self._ids = provider.id_generator
        self._random_ids = self._ids.is_trace_id_random()
        # The SDK's default generator's ids drawn here, without a method call each.
        self._draw = type(self._ids) is RandomIdGenerator
        # What the samplers OTEL_TRACES_SAMPLER names would answer, without asking them for
        # each span: `always_on` and `always_off` always the same; the SDK's default and every
        # `parentbased_*` the parent's decision (their delegates for a parent are the SDK's
        # defaults, ALWAYS_ON for a sampled one and ALWAYS_OFF for another), asking only for a
        # root span.
        self._fixed = {id(ALWAYS_ON): True, id(ALWAYS_OFF): False}.get(id(self._sampler))
        self._follows_parent = isinstance(self._sampler, ParentBased)

    def start(
        self,
        name: str,
        parent: SpanContext | Literal[_Parent.CURRENT] | None = CURRENT,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, AnyValue] | None = None,
    ) -> LeanSpan | UnsampledSpan:
        """A started span, a child of `parent` (by default of the current span; None: a root
        span), recording unless the sampler drops it (then one that only carries its context
        to its children). As a context manager, it is the current span while the block runs,
        and ends with it."""
        if parent is CURRENT:
            current = self.current.get()
            # The variable only ever holds this module's spans, whose context is this field.
            parent = None if current is None else current._context  # type: ignore[attr-defined]
        parent_flags = 0
        trace_state: TraceState | None = None
        if parent is not None:
            # A SpanContext is this tuple; its properties are a call each.
            trace_id, _, _, parent_flags, trace_state, valid = parent
            if not valid:
                parent = None
        if parent is None:
            trace_id = (getrandbits(128) if self._draw else 0) or self._ids.generate_trace_id()
            random = self._random_ids
            trace_state = None
        else:
            random = bool(parent_flags & TraceFlags.RANDOM_TRACE_ID)
        sampled = self._fixed
        extra: Attributes = None
        if sampled is None:
            if parent is not None and self._follows_parent:
                sampled = bool(parent_flags & TraceFlags.SAMPLED)
            else:
                sampled, extra, trace_state = self._ask(name, trace_id, parent, kind, attributes)
        context = _span_context(
            trace_id,
            (getrandbits(64) if self._draw else 0) or self._ids.generate_span_id(),
            False,
            _FLAGS[
                (TraceFlags.SAMPLED if sampled else 0)
                | (TraceFlags.RANDOM_TRACE_ID if random else 0)
            ],
            trace_state,
        )
        if not sampled:
            return self._unsampled(context)
        kept = dict(attributes) if attributes else {}
        if extra:
            kept.update(extra)
        return self._span(name, context, parent, kind, kept)

    def _ask(
        self,
        name: str,
        trace_id: int,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, AnyValue] | None,
    ) -> tuple[bool, Attributes, TraceState | None]:
        """The sampler's decision, attributes and trace state, asked as the SDK's tracer asks."""
        context = None if parent is None else trace.set_span_in_context(NonRecordingSpan(parent))
        result = self._sampler.should_sample(context, trace_id, name, kind, attributes, _NO_LINKS)
        sampled = result.decision is Decision.RECORD_AND_SAMPLE
        return sampled, result.attributes, result.trace_state


_NO_LINKS: Final[Sequence[Link]] = ()


def remote_parent(traceparent: str) -> SpanContext | None:
    """The span a W3C traceparent names (remote), None for a malformed one: W3C's rules, as
    OpenTelemetry's propagator applies them (which costs several times more: it builds a
    context to put the span in, only for it to be taken out again)."""
    if len(traceparent) > _TRACEPARENT_MAX:
        return None
    match = _TRACEPARENT.fullmatch(traceparent)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _NO_TRACE or span_id == _NO_SPAN:
        return None
    return _span_context(int(trace_id, 16), int(span_id, 16), True, _flags(flags), None)


def _flags(flags: str) -> TraceFlags:
    value = int(flags, 16)
    return _FLAGS[value] if value < len(_FLAGS) else TraceFlags(value)


def _span_context(
    trace_id: int, span_id: int, is_remote: bool, flags: TraceFlags, state: TraceState | None
) -> SpanContext:
    """`SpanContext(trace_id, span_id, is_remote, flags, state)`, the tuple its `__new__`
    builds, without the keyword handling that makes that call a third of a span's start."""
    valid = 0 < trace_id <= _TRACE_ID_MAX and 0 < span_id <= _SPAN_ID_MAX
    fields = (trace_id, span_id, is_remote, flags, _NO_STATE if state is None else state, valid)
    return tuple.__new__(SpanContext, fields)
