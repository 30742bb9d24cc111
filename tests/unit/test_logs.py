"""The refusal log: one line per interval, counting what was refused since the last."""

from __future__ import annotations

import logging

import pytest

from api.http.logs import RefusalLog


def test_refusals_are_counted_and_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    log = RefusalLog(every=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="api.http.logs"):
        log.refused("http")  # the first is said at once
        for _ in range(5):
            log.refused("http")
        log.refused("websocket")
        now[0] += 10.0
        log.refused("http")
    assert [r.getMessage() for r in caplog.records] == [
        "event=connections_refused reason=max_connections http=1",
        "event=connections_refused reason=max_connections http=6 websocket=1",
    ]
