"""The spans `telemetry.otlp` writes as protobuf bytes are the request OpenTelemetry's own
exporter encoder builds for the same spans, as `opentelemetry-proto` decodes both: every field a
span can carry (kinds, parents local and remote, trace state, attributes of each type, events,
links, statuses, dropped counts) and the grouping by resource and instrumentation scope."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from telemetry.otlp import SpanCache, SpanEncoder, _varint, encode_span, scope_span
from telemetry.spans import LeanTracer, remote_parent


class Kept(SpanExporter):
    """The finished spans, in order."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


@pytest.fixture
def kept() -> Kept:
    exporter = Kept()
    resource = Resource.create({"service.name": "orders-test", "deployment.count": 3})
    provider = TracerProvider(resource=resource, span_limits=SpanLimits(max_attributes=6))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    other = TracerProvider(resource=Resource.create({"service.name": "other"}))
    other.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("orders", "1.2", schema_url="https://opentelemetry.io/schemas/1")
    remote = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
    )
    server = tracer.start_span(
        "POST /graphql",
        context=set_span_in_context(NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "url.path": "/graphql"},
    )
    server.set_attribute("http.response.status_code", 200)
    child = tracer.start_span("command PlaceOrder", context=set_span_in_context(server))
    child.set_attributes(
        {"yes": True, "no": False, "zero": 0, "negative": -7, "big": 2**62, "ratio": 0.25}
    )
    child.set_attribute("over the limit", "dropped")
    child.add_event("retry", {"attempt": 2, "names": ("a", "b")}, timestamp=1_700_000_000_000)
    child.add_link(remote, {"why": "batch"})
    child.set_status(Status(StatusCode.ERROR, "ConcurrencyConflict: expected 1, was 2"))
    child.end()
    server.end()
    for kind in (SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER):
        tracer.start_span(f"kind {kind.name}", kind=kind, attributes={"list": [1, 2]}).end()
    plain = provider.get_tracer("plain")
    ok = plain.start_span("ok", attributes={"floats": [0.5], "flags": [True], "empty": ""})
    ok.set_status(Status(StatusCode.OK))
    ok.end()
    other.get_tracer("orders").start_span("elsewhere").end()
    return exporter


def decoded(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


def test_the_bytes_decode_to_what_the_exporters_own_encoder_builds(kept: Kept) -> None:
    assert len(kept.spans) == 7
    ours = decoded(SpanEncoder().encode(kept.spans))
    theirs = encode_spans(kept.spans)
    assert ours == theirs
    # Not vacuous: the fields this covers are there.
    assert [len(r.scope_spans) for r in ours.resource_spans] == [2, 1]
    command = ours.resource_spans[0].scope_spans[0].spans[0]
    assert command.name == "command PlaceOrder"
    assert command.dropped_attributes_count == 1
    assert command.status.code == 2
    assert command.events[0].name == "retry"
    assert command.links[0].span_id.hex() == "00f067aa0ba902b7"


def test_an_encoder_encodes_batch_after_batch_the_same(kept: Kept) -> None:
    encoder = SpanEncoder()
    first = encoder.encode(kept.spans[:3])
    assert decoded(encoder.encode(kept.spans[:3])) == decoded(first) == encode_spans(kept.spans[:3])
    assert decoded(encoder.encode(kept.spans[3:])) == encode_spans(kept.spans[3:])
    assert encoder.encode([]) == b""


class Ended:
    """A span processor keeping what ends."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


_values = st.one_of(
    st.text(max_size=40), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.floats()
)


@settings(max_examples=200, deadline=None)
@for_all(
    name=st.text(max_size=200),
    kind=st.sampled_from(list(SpanKind)),
    attributes=st.dictionaries(st.text(max_size=30), _values, max_size=4),
    parent=st.sampled_from(["none", "local", "remote"]),
    status=st.sampled_from([None, StatusCode.OK, StatusCode.ERROR]),
)
def test_a_lean_span_is_written_as_the_exporters_encoder_writes_it(
    name: str,
    kind: SpanKind,
    attributes: dict[str, object],
    parent: str,
    status: StatusCode | None,
) -> None:
    ended = Ended()
    tracer = LeanTracer(TracerProvider(), ended, InstrumentationScope("orders"))
    outer = tracer.start("outer")
    parents = {
        "none": None,
        "local": outer.get_span_context(),
        "remote": remote_parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    }
    span = tracer.start(name, parents[parent], kind, attributes)  # type: ignore[arg-type]
    if status is not None:
        span.set_status(status, "why")
    span.end()
    (one,) = ended.spans
    general = encode_span(one)
    assert scope_span(one, SpanCache()) == b"\x12" + _varint(len(general)) + general
    decoded = ExportTraceServiceRequest()
    decoded.ParseFromString(SpanEncoder().encode([one]))
    assert decoded == encode_spans([one])
