"""Finished spans as an OTLP `ExportTraceServiceRequest`, written as protobuf bytes directly.

The exporter's own encoder builds a protobuf message object per span, attribute and value and
then serializes them: about 20 µs a span, in the export thread, which holds the GIL meanwhile and
so takes that time from the event loop. Writing the same wire format with bytes operations takes
a fraction of it, and the resource and the instrumentation scope, the same for every span of a
process, are encoded once. `tests/integration/test_otlp_encoding.py` holds the bytes to what
`opentelemetry-proto` decodes and to what the exporter's own encoder writes.

Field numbers: opentelemetry-proto's `trace/v1/trace.proto`, `common/v1/common.proto`,
`resource/v1/resource.proto` and `collector/trace/v1/trace_service.proto`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.trace import DEFAULT_TRACE_STATE, Status, StatusCode

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind

_FIXED64: Final = struct.Struct("<Q")
_FIXED32: Final = struct.Struct("<I")
_DOUBLE: Final = struct.Struct("<d")

# Span.flags bits (trace.proto's SpanFlags): whether the parent was remote is known, and is it.
_HAS_IS_REMOTE: Final = 0x100
_IS_REMOTE: Final = 0x200
_LOCAL_FLAGS: Final = _FIXED32.pack(_HAS_IS_REMOTE)
_REMOTE_FLAGS: Final = _FIXED32.pack(_HAS_IS_REMOTE | _IS_REMOTE)

UNSET: Final = Status(StatusCode.UNSET)
"""The status of a span whose status was never set (`telemetry.spans`' spans share it)."""
_UNSET_STATUS: Final = b"\x7a\x00"  # Span.status (15), empty: the exporter's encoder writes it too
_LOCAL_TAIL: Final = b"\x85\x01" + _LOCAL_FLAGS  # Span.flags (16), fixed32
_REMOTE_TAIL: Final = b"\x85\x01" + _REMOTE_FLAGS


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64: two's complement, ten bytes
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (a string, bytes or a message) under its tag."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: object) -> bytes:
    """An AnyValue message, as the exporter's encoder writes one (bool before int)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        values = b"".join(_field(b"\x0a", _any_value(v)) for v in value)
        return _field(b"\x2a", values)  # ArrayValue.values (1)
    if isinstance(value, Mapping):
        return _field(b"\x32", _key_values(b"\x0a", value))  # KeyValueList.values (1)
    raise TypeError(f"no OTLP value for {type(value).__name__}")


def _key_values(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Repeated KeyValue messages under `tag` (their field in the enclosing message)."""
    if not attributes:
        return b""
    return b"".join(_field(tag, _key_value(key, value)) for key, value in attributes.items())


def _span_flags(parent: SpanContext | None) -> bytes:
    return _REMOTE_FLAGS if parent is not None and parent.is_remote else _LOCAL_FLAGS


def _trace_state(context: SpanContext) -> bytes:
    state = context.trace_state
    if not state:
        return b""
    return _field(b"\x1a", ",".join(f"{k}={v}" for k, v in state.items()).encode())


def _status(span: ReadableSpan) -> bytes:
    status = span.status
    code = status.status_code.value
    if not code and not status.description:
        return _UNSET_STATUS
    body = _field(b"\x12", status.description.encode()) if status.description else b""
    if code:
        body += b"\x18" + _varint(code)
    return _field(b"\x7a", body)


def _events(span: ReadableSpan) -> bytes:
    out = b""
    for event in span.events:
        body = b"\x09" + _FIXED64.pack(event.timestamp) + _field(b"\x12", event.name.encode())
        body += _key_values(b"\x1a", event.attributes)
        if event.dropped_attributes:
            body += b"\x20" + _varint(event.dropped_attributes)
        out += _field(b"\x5a", body)
    return out


def _links(span: ReadableSpan) -> bytes:
    out = b""
    for link in span.links:
        context = link.context
        body = _field(b"\x0a", context.trace_id.to_bytes(16, "big"))
        body += _field(b"\x12", context.span_id.to_bytes(8, "big"))
        body += _key_values(b"\x22", link.attributes)
        if link.dropped_attributes:
            body += b"\x28" + _varint(link.dropped_attributes)
        body += b"\x35" + _span_flags(context)
        out += _field(b"\x6a", body)
    return out


class SpanCache:
    """Encoded pieces that repeat from span to span in a process: span names with their kinds,
    attribute pairs. Bounded: past `limit` entries each, a new piece is encoded and not kept."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        # name -> (kind, Span.name and Span.kind): one kind per name in practice, checked
        self.names: dict[str, tuple[SpanKind, bytes]] = {}
        self.pairs: dict[tuple[str, object], bytes] = {}

    def name_and_kind(self, name: str, kind: SpanKind) -> bytes:
        """Span.name (5) and Span.kind (6)."""
        kept = self.names.get(name)
        if kept is not None and kept[0] is kind:  # a SpanKind is a singleton
            return kept[1]
        # proto's kind = the API's + 1 (SPAN_KIND_UNSPECIFIED is proto's 0)
        encoded = _field(b"\x2a", name.encode()) + b"\x30" + bytes((kind.value + 1,))
        if kept is None and len(self.names) < self.limit:
            self.names[name] = (kind, encoded)
        return encoded

    def attributes(self, attributes: Mapping[str, Any]) -> bytes:
        """Span.attributes (9), a str, int or bool value's pair kept (type and all: True is
        not 1 here)."""
        pairs = self.pairs
        parts = []
        for key, value in attributes.items():
            kind = type(value)
            encoded = pairs.get((key, value)) if kind is str or kind is int else None
            if encoded is None:
                encoded = _field(b"\x4a", _key_value(key, value))
                if (kind is str or kind is int) and len(pairs) < self.limit:
                    pairs[(key, value)] = encoded
            parts.append(encoded)
        return b"".join(parts)


def _key_value(key: object, value: object) -> bytes:
    return _field(b"\x0a", str(key).encode()) + _field(b"\x12", _any_value(value))


_IDS: Final = struct.Struct(">2sQQ2sQ")  # trace_id (1) in two halves, span_id (2)
_PARENT: Final = struct.Struct(">2sQ")  # parent_span_id (4)
_IDS_PARENT: Final = struct.Struct(">2sQQ2sQ2sQ")  # trace_id (1), span_id (2), parent (4)
_TIMES: Final = struct.Struct("<BQBQ")  # start (7) and end (8) time, fixed64
_LOW64: Final = (1 << 64) - 1


def encode_span(span: ReadableSpan, cache: SpanCache | None = None) -> bytes:
    """One Span message (its fields in field-number order, as protobuf writes them). `cache`
    keeps pieces that repeat across spans."""
    return b"".join(_span_fields(span, SpanCache(limit=0) if cache is None else cache))


def scope_span(span: ReadableSpan, cache: SpanCache | None = None) -> bytes:
    """A span as an item of ScopeSpans.spans (2), what `SpanEncoder.request` joins: its tag,
    its length and its fields, joined once."""
    fields = _span_fields(span, SpanCache(limit=0) if cache is None else cache)
    size = sum(map(len, fields))
    if size < 0x80:
        fields.insert(0, bytes((0x12, size)))
    elif size < 0x4000:  # a varint of two bytes: most spans here
        fields.insert(0, _ITEM_TWO_BYTE_SIZE.pack(0x12, (size & 0x7F) | 0x80, size >> 7))
    else:
        fields.insert(0, b"\x12" + _varint(size))
    return b"".join(fields)


_ITEM_TWO_BYTE_SIZE: Final = struct.Struct("BBB")
_UNSET_LOCAL_END: Final = _UNSET_STATUS + _LOCAL_TAIL
_UNSET_REMOTE_END: Final = _UNSET_STATUS + _REMOTE_TAIL


def _span_fields(span: ReadableSpan, cache: SpanCache) -> list[bytes]:
    """A Span message's fields, to be joined.

    It reads the fields `ReadableSpan.__init__` sets rather than its properties (each a call,
    some an isinstance test; together most of the cost of the span's bytes), and asks for the
    dropped counts only of the bounded containers that can have any: a `LeanSpan`'s are a plain
    dict and empty tuples, its status `UNSET` itself, and it has no trace state, so its ids and
    parent are one struct and the rest a few tests."""
    context = span._context
    parent = span._parent
    # A finished span has all three.
    assert context is not None
    assert span._start_time is not None
    assert span._end_time is not None
    trace_id, span_id, _, _, trace_state, _ = context  # a SpanContext is this tuple
    high, low = trace_id >> 64, trace_id & _LOW64
    if trace_state is not DEFAULT_TRACE_STATE and trace_state:
        ids = _IDS.pack(b"\x0a\x10", high, low, b"\x12\x08", span_id) + _trace_state(context)
        if parent is not None:
            ids += _PARENT.pack(b"\x22\x08", parent[1])
    elif parent is None:
        ids = _IDS.pack(b"\x0a\x10", high, low, b"\x12\x08", span_id)
    else:
        ids = _IDS_PARENT.pack(b"\x0a\x10", high, low, b"\x12\x08", span_id, b"\x22\x08", parent[1])
    fields = [
        ids,
        cache.name_and_kind(span._name, span._kind),
        _TIMES.pack(0x39, span._start_time, 0x41, span._end_time),
    ]
    attributes = span._attributes
    if attributes:
        fields.append(cache.attributes(attributes))
    if type(attributes) is not dict and span.dropped_attributes:
        fields.append(b"\x50" + _varint(span.dropped_attributes))
    events, links = span._events, span._links
    if events:
        fields.append(_events(span))
    if type(events) is not tuple and span.dropped_events:
        fields.append(b"\x60" + _varint(span.dropped_events))
    if links:
        fields.append(_links(span))
    if type(links) is not tuple and span.dropped_links:
        fields.append(b"\x70" + _varint(span.dropped_links))
    remote = parent is not None and parent[2]
    status = span._status
    if status is UNSET or (status.status_code is StatusCode.UNSET and not status.description):
        fields.append(_UNSET_REMOTE_END if remote else _UNSET_LOCAL_END)
    else:
        fields.append(_status(span) + (_REMOTE_TAIL if remote else _LOCAL_TAIL))
    return fields


def _resource(resource: Resource) -> bytes:
    """ResourceSpans.resource (1), and the schema URL (3) to follow the scope spans."""
    return _field(b"\x0a", _key_values(b"\x0a", resource.attributes))


def _scope(scope: InstrumentationScope | None) -> bytes:
    """ScopeSpans.scope (1)."""
    if scope is None:
        return _field(b"\x0a", b"")
    body = _field(b"\x0a", scope.name.encode()) if scope.name else b""
    if scope.version:
        body += _field(b"\x12", scope.version.encode())
    body += _key_values(b"\x1a", scope.attributes)
    return _field(b"\x0a", body)


def _schema_url(url: str | None) -> bytes:
    return _field(b"\x1a", url.encode()) if url else b""


class SpanEncoder:
    """Encodes batches of finished spans to an ExportTraceServiceRequest, grouped by resource
    and instrumentation scope as the exporter's own encoder groups them. The encoded resource
    and scope are kept, by identity (a Resource's hash serializes its attributes to JSON): a
    process has one of each."""

    def __init__(self) -> None:
        self._resources: dict[int, tuple[Resource, bytes]] = {}
        self._scopes: dict[int, tuple[InstrumentationScope | None, bytes]] = {}
        self._cache = SpanCache()

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """The request's bytes."""
        Scopes = dict[int, tuple["InstrumentationScope | None", list[bytes]]]
        groups: dict[int, tuple[Resource, Scopes]] = {}
        for span in spans:
            resource, scope = span.resource, span.instrumentation_scope
            group = groups.get(id(resource))
            if group is None:
                group = groups[id(resource)] = (resource, {})
            scoped = group[1].get(id(scope))
            if scoped is None:
                scoped = group[1][id(scope)] = (scope, [])
            scoped[1].append(scope_span(span, self._cache))
        return b"".join(
            self._resource_spans(resource, [self._scope_spans(s, e) for s, e in scopes.values()])
            for resource, scopes in groups.values()
        )

    def request(
        self, resource: Resource, scope: InstrumentationScope | None, spans: Sequence[bytes]
    ) -> bytes:
        """The request for spans of one resource and scope, each already a `scope_span`."""
        return self._resource_spans(resource, [self._scope_spans(scope, spans)])

    def _scope_spans(self, scope: InstrumentationScope | None, spans: Sequence[bytes]) -> bytes:
        """ResourceSpans.scope_spans (2): the scope, its spans, its schema URL."""
        body = self._scope_bytes(scope) + b"".join(spans)
        body += _schema_url(scope.schema_url if scope else None)
        return _field(b"\x12", body)

    def _resource_spans(self, resource: Resource, scope_spans: Sequence[bytes]) -> bytes:
        """ExportTraceServiceRequest.resource_spans (1)."""
        body = self._resource_bytes(resource) + b"".join(scope_spans)
        body += _schema_url(resource.schema_url)
        return _field(b"\x0a", body)

    def _resource_bytes(self, resource: Resource) -> bytes:
        kept = self._resources.get(id(resource))
        if kept is None:
            kept = self._resources[id(resource)] = (resource, _resource(resource))
        return kept[1]

    def _scope_bytes(self, scope: InstrumentationScope | None) -> bytes:
        kept = self._scopes.get(id(scope))
        if kept is None:
            kept = self._scopes[id(scope)] = (scope, _scope(scope))
        return kept[1]
