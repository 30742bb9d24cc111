"""Tracing is off unless OpenTelemetry's variables ask for an OTLP export, and off the service
loads none of the tracing SDK: no tracer provider, span processor, exporter or propagator.
(redis-py imports OpenTelemetry's metrics API when it is installed, for its own opt-in metrics.)
On, a collector that does not answer is one line when it starts and one when it ends."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from telemetry import tracing
from telemetry.tracing import wanted
from tests.support.otlp_receiver import otlp_receiver
from tests.support.processes import REPO_ROOT, free_port


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "orders", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_on_only_when_an_otlp_export_is_asked_for(
    environ: dict[str, str], on: bool
) -> None:
    assert wanted(environ) is on


def test_off_the_tracing_sdk_is_not_imported() -> None:
    probe = (
        "import sys\n"
        "from telemetry import tracing\n"
        "assert not tracing.start('probe', {})\n"
        "import api.wiring.app, api.wiring.cli\n"
        "import application.handler, projections.runner, relay.message\n"
        "sdk = ('opentelemetry.sdk.trace', 'opentelemetry.exporter', 'opentelemetry.propagat',\n"
        "       'opentelemetry.trace.propagation.tracecontext')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(sdk))\n"
        "print(' '.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_a_collector_outage_is_one_line_and_its_end_another(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")  # s: each batch gives up soon
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # ms
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    caplog.set_level(logging.DEBUG)
    assert tracing.start("outage-probe")
    try:
        # Nobody listens: batches fail, and more spans than the queue holds are dropped.
        for _ in range(3000):
            with tracing.span("during the outage"):
                pass
        time.sleep(3)
        with otlp_receiver(port=port) as receiver:
            with tracing.span("after the outage"):
                pass
            receiver.wait_for({"after the outage"})
            time.sleep(0.5)
    finally:
        tracing.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert [line for line in lines if line.startswith("event=trace_export_failed")] == [
        "event=trace_export_failed retrying=yes"
    ]
    recovered = [line for line in lines if line.startswith("event=trace_export_recovered")]
    assert len(recovered) == 1
    assert int(recovered[0].rpartition("spans_lost=")[2]) > 0
    assert [r.name for r in caplog.records if r.name.startswith("opentelemetry")] == []
