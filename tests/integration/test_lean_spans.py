"""The lean spans (`telemetry.spans`) decide and carry what the SDK's own tracer would: for each
sampler OTEL_TRACES_SAMPLER names, the same spans are sampled, with the same trace ids, parents
and flags, and they reach the SDK's span processor as the SDK's `ReadableSpan`; a traceparent is
read as OpenTelemetry's W3C propagator reads it."""

from __future__ import annotations

import json
from collections.abc import Sequence

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from telemetry.otlp import SpanEncoder
from telemetry.spans import LeanSpan, LeanTracer, remote_parent
from telemetry.tracing import metadata_traceparent


class Kept(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def remote(flags: int, trace_id: int = 0x4BF92F3577B34DA6A3CE929D0E0E4736) -> SpanContext:
    return SpanContext(trace_id, 0x00F067AA0BA902B7, is_remote=True, trace_flags=TraceFlags(flags))


SAMPLERS: dict[str, Sampler] = {
    "always_on": ALWAYS_ON,
    "always_off": ALWAYS_OFF,
    "parentbased_always_on": DEFAULT_ON,
    "parentbased_traceidratio 0.5": ParentBased(TraceIdRatioBased(0.5)),
    "traceidratio 0.5": TraceIdRatioBased(0.5),
}
LOW_TRACE_ID = 0x10  # sampled at any ratio above 0 (TraceIdRatioBased's rule)
HIGH_TRACE_ID = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF10  # sampled at no ratio below 1


class FixedIds(RandomIdGenerator):
    """Random span ids, one trace id (a root's decision by ratio depends on it)."""

    def __init__(self, trace_id: int) -> None:
        self.trace_id = trace_id

    def generate_trace_id(self) -> int:
        return self.trace_id


ROOT_IDS = {"root low trace id": LOW_TRACE_ID, "root high trace id": HIGH_TRACE_ID}
PARENTS = {
    "root low trace id": None,
    "root high trace id": None,
    "remote sampled": remote(0x01),
    "remote not sampled": remote(0x00),
    "remote low trace id": remote(0x01, trace_id=LOW_TRACE_ID),
    "remote high trace id": remote(0x00, trace_id=HIGH_TRACE_ID),
}


@pytest.mark.parametrize("sampler_name", SAMPLERS)
@pytest.mark.parametrize("parent_name", PARENTS)
def test_a_span_and_its_child_are_sampled_as_the_sdk_samples_them(
    sampler_name: str, parent_name: str
) -> None:
    sampler, parent = SAMPLERS[sampler_name], PARENTS[parent_name]
    provider = TracerProvider(
        sampler=sampler,
        resource=Resource.create({"service.name": "t"}),
        id_generator=FixedIds(ROOT_IDS.get(parent_name, LOW_TRACE_ID)),
    )
    exporter = Kept()
    processor = SimpleSpanProcessor(exporter)
    lean = LeanTracer(provider, processor, InstrumentationScope("orders"))
    sdk = provider.get_tracer("orders")

    ours = lean.start("request", parent, SpanKind.SERVER, {"http.request.method": "POST"})
    child = lean.start("command", ours.get_span_context())
    context = None if parent is None else trace.set_span_in_context(trace.NonRecordingSpan(parent))
    theirs = sdk.start_span("request", context, SpanKind.SERVER, {"http.request.method": "POST"})
    their_child = sdk.start_span("command", trace.set_span_in_context(theirs))

    for mine, sdks in ((ours, theirs), (child, their_child)):
        assert mine.is_recording() == sdks.is_recording()
        got, expected = mine.get_span_context(), sdks.get_span_context()
        assert got.trace_flags == expected.trace_flags
        assert got.trace_id == expected.trace_id
    assert child.get_span_context().trace_id == ours.get_span_context().trace_id
    child.end()
    ours.end()
    sampled = [s for s in (child, ours) if s.get_span_context().trace_flags.sampled]
    assert all(isinstance(s, LeanSpan) for s in sampled)
    assert [id(s) for s in exporter.spans] == [id(s) for s in sampled]  # themselves, no copy
    assert len(sampled) == (2 if ours.get_span_context().trace_flags.sampled else 0)
    for span in exporter.spans:
        assert isinstance(span, ReadableSpan)
        assert span.end_time is not None
        assert span.start_time is not None
        assert span.end_time >= span.start_time
    if exporter.spans:
        (ended_child, ended_request) = exporter.spans
        assert ended_child.parent == ours.get_span_context()
        assert ended_request.parent == parent
        assert dict(ended_request.attributes or {}) == {"http.request.method": "POST"}
        request = ExportTraceServiceRequest()
        request.ParseFromString(SpanEncoder().encode(exporter.spans))
        assert request == encode_spans(exporter.spans)


def test_a_span_keeps_what_is_set_until_it_ends() -> None:
    exporter = Kept()
    provider = TracerProvider()
    lean = LeanTracer(provider, SimpleSpanProcessor(exporter), InstrumentationScope("orders"))
    span = lean.start("graphql", kind=SpanKind.INTERNAL)
    span.update_name("mutation Place")
    span.set_attribute("http.response.status_code", 200)
    span.set_status(Status(StatusCode.ERROR, "ConcurrencyConflict: expected 1"))
    span.set_status(Status(StatusCode.UNSET))  # never replaces another
    span.end()
    span.end()  # once
    span.set_attribute("late", 1)
    span.update_name("late")
    (ended,) = exporter.spans
    assert ended.name == "mutation Place"
    assert dict(ended.attributes or {}) == {"http.response.status_code": 200}
    assert ended.status.status_code is StatusCode.ERROR
    assert ended.status.description == "ConcurrencyConflict: expected 1"
    assert ended.instrumentation_scope is not None
    assert ended.instrumentation_scope.name == "orders"
    assert ended.resource is provider.resource
    # Encoded as the exporter's own encoder would encode it.
    request = ExportTraceServiceRequest()
    request.ParseFromString(SpanEncoder().encode(exporter.spans))
    assert request == encode_spans(exporter.spans)
    assert request.resource_spans[0].scope_spans[0].spans[0].name == "mutation Place"


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "garbage",
        "",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-" + "x" * 600,
    ],
)
def test_a_traceparent_is_read_as_the_w3c_propagator_reads_it(traceparent: str) -> None:
    extracted = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    expected = trace.get_current_span(extracted).get_span_context()
    got = remote_parent(traceparent)
    if not expected.is_valid:
        assert got is None
    else:
        assert got is not None
        assert (got.trace_id, got.span_id, got.trace_flags, got.is_remote) == (
            expected.trace_id,
            expected.span_id,
            expected.trace_flags,
            True,
        )


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WRITTEN = {"schemaVersion": 2, "$correlationId": "c", "actor": "staff", "$traceparent": TRACEPARENT}


@pytest.mark.parametrize(
    "metadata",
    [
        orjson.dumps(WRITTEN),
        json.dumps(WRITTEN).encode(),  # another writer's spacing
        orjson.dumps({**WRITTEN, "actor": f'"$traceparent":"{TRACEPARENT[:-2]}ff"'}),
        orjson.dumps({"actor": f'"$traceparent":"{TRACEPARENT}"'}),  # only inside a string
        orjson.dumps({**WRITTEN, "$traceparent": TRACEPARENT + "-future"}),
        orjson.dumps({**WRITTEN, "$traceparent": "short"}),
        orjson.dumps({**WRITTEN, "$traceparent": 'a"' + TRACEPARENT[2:]}),
        orjson.dumps({**WRITTEN, "$traceparent": "é" + TRACEPARENT[2:]}),
        orjson.dumps({**WRITTEN, "$traceparent": 7}),
        orjson.dumps({"schemaVersion": 2}),
    ],
)
def test_an_events_traceparent_is_the_one_its_parsed_metadata_holds(metadata: bytes) -> None:
    found = orjson.loads(metadata).get("$traceparent")
    assert metadata_traceparent(metadata) == (found if isinstance(found, str) else None)
