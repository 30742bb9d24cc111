"""The exporter's requests go straight to a plain-HTTP collector on one kept-alive connection
(`telemetry.transport`), and through the SDK's requests session wherever that session does
something more (TLS, a proxy, a credential provider). Against real HTTP servers: batches arrive
whole across a collector that closes every connection, and one that asks to retry later."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport

from telemetry.export import QuietOtlpExporter, direct
from telemetry.transport import DirectTransport

ENDPOINT = "http://127.0.0.1:4318/v1/traces"


@pytest.mark.parametrize(
    ("endpoint", "environ", "straight"),
    [
        (ENDPOINT, {}, True),
        ("https://collector:4318/v1/traces", {}, False),
        (ENDPOINT, {"HTTP_PROXY": "http://proxy:3128"}, False),
        (ENDPOINT, {"ALL_PROXY": "http://proxy:3128"}, False),
        (ENDPOINT, {"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "127.0.0.1"}, True),
        (ENDPOINT, {"HTTPS_PROXY": "http://proxy:3128"}, True),  # not for http://
        (ENDPOINT, {"OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER": "x"}, False),
        (ENDPOINT, {"OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER": "x"}, False),
    ],
)
def test_spans_go_straight_only_where_the_session_adds_nothing(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, environ: dict[str, str], straight: bool
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        for variable in (name, name.lower()):
            monkeypatch.delenv(variable, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert direct(endpoint) is straight
    monkeypatch.delenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER", raising=False)
    monkeypatch.delenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER", raising=False)
    if "CREDENTIAL" not in str(environ):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
        transport = QuietOtlpExporter()._client._transport
        assert isinstance(transport, DirectTransport if straight else RequestsHTTPTransport)


class Collector:
    """What a test collector got: bodies, and the connections they came on."""

    def __init__(self, answers: list[tuple[int, dict[str, str]]], close: bool) -> None:
        self.answers = answers  # (status, headers) for the first requests, then 200
        self.close = close
        self.bodies: list[bytes] = []
        self.peers: set[tuple[str, int]] = set()
        self.endpoint = ""


@contextmanager
def collector(*, answers: list[tuple[int, dict[str, str]]], close: bool) -> Iterator[Collector]:
    got = Collector(list(answers), close)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0" if close else "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.peers.add(self.client_address)
            status, headers = got.answers.pop(0) if got.answers else (200, {})
            if status == 200:
                got.bodies.append(body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


def _exporter(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> QuietOtlpExporter:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    exporter = QuietOtlpExporter()
    assert isinstance(exporter._client._transport, DirectTransport)
    return exporter


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "closes each"])
def test_every_batch_arrives_on_as_few_connections_as_the_collector_allows(
    monkeypatch: pytest.MonkeyPatch, close: bool
) -> None:
    with collector(answers=[], close=close) as got:
        exporter = _exporter(monkeypatch, got.endpoint)
        bodies = [bytes([n]) * (100 + n) for n in range(20)]
        assert all(exporter.send(body, spans=1) for body in bodies)
        exporter.shutdown()  # type: ignore[no-untyped-call]
    assert got.bodies == bodies
    assert len(got.peers) == (20 if close else 1)


def test_a_collector_asking_to_retry_gets_the_batch_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    busy = (503, {"Retry-After": "0"})
    with collector(answers=[busy, busy], close=False) as got:
        exporter = _exporter(monkeypatch, got.endpoint)
        assert exporter.send(b"spans", spans=1)
        exporter.shutdown()  # type: ignore[no-untyped-call]
    assert got.bodies == [b"spans"]
