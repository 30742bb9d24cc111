"""An OTLP/HTTP trace receiver on loopback, for tests and the tracing benchmark: accepts
`POST /v1/traces` (protobuf, gzip or not) as an OpenTelemetry Collector would, and keeps the
spans it decodes with `opentelemetry-proto` (or only counts the requests, `keep=False`)."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedSpan:
    """One span as the receiver decoded it; ids in lowercase hex, "" for no parent."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    links: tuple[tuple[str, str], ...]
    attributes: dict[str, object]

    @property
    def traceparent(self) -> str:
        """The W3C traceparent naming this span (sampled)."""
        return f"00-{self.trace_id}-{self.span_id}-01"


def _value(any_value: object) -> object:
    kind = any_value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(any_value, kind) if kind else None


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one ExportTraceServiceRequest."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=service,
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        links=tuple(
                            (link.trace_id.hex(), link.span_id.hex()) for link in span.links
                        ),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    )
                )
    return spans


class OtlpReceiver:
    """What the receiver got: its spans (when kept) and how many export requests came."""

    def __init__(self, *, keep: bool) -> None:
        self.keep = keep
        self.requests = 0
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self.endpoint = ""

    def add(self, body: bytes) -> None:
        """One export request's body."""
        spans = decode(body) if self.keep else []
        with self._lock:
            self.requests += 1
            self._spans.extend(spans)

    @property
    def spans(self) -> list[ReceivedSpan]:
        """The spans received so far."""
        with self._lock:
            return list(self._spans)

    def wait_for(self, names: set[str], within: float = 30.0) -> list[ReceivedSpan]:
        """The spans received once spans of every name in `names` are among them (bounded)."""
        deadline = time.monotonic() + within
        while True:
            spans = self.spans
            if names <= {s.name for s in spans}:
                return spans
            if time.monotonic() > deadline:
                got = sorted({s.name for s in spans})
                raise AssertionError(
                    f"no spans {sorted(names - set(got))} within {within} s: {got}"
                )
            time.sleep(0.1)


def _handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as a collector: the exporter sends every batch on one connection.
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            receiver.add(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: a test's output is not the place for every export."""

    return Handler


@contextmanager
def otlp_receiver(*, keep: bool = True, port: int = 0) -> Iterator[OtlpReceiver]:
    """A receiver on loopback (`port`, else a free one); its `endpoint` is an
    OTEL_EXPORTER_OTLP_ENDPOINT."""
    receiver = OtlpReceiver(keep=keep)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    server.daemon_threads = True
    receiver.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.support.otlp_receiver --port N`: a receiver that answers and discards (for
    the tracing benchmark, in a process of its own so it takes no time from the load generator)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tests.support.otlp_receiver", description=main.__doc__
    )
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    receiver = OtlpReceiver(keep=False)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(receiver))
    server.daemon_threads = True
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
