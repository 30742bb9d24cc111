"""Tracing is off unless OpenTelemetry's variables ask for an OTLP export, and off the service
loads none of the tracing SDK: no tracer provider, span processor, exporter or propagator.
(redis-py imports OpenTelemetry's metrics API when it is installed, for its own opt-in metrics.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from telemetry.tracing import wanted
from tests.processes import REPO_ROOT


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
        "import api.app, api.cli, application.handler, projections.runner, relay.message\n"
        "sdk = ('opentelemetry.sdk.trace', 'opentelemetry.exporter', 'opentelemetry.propagat',\n"
        "       'opentelemetry.trace.propagation.tracecontext')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(sdk))\n"
        "print(' '.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
