"""Library loggers folded: a library's repeated message passes once per period with how many
were held back, without its retry's traceback; our own loggers and other messages pass."""

from __future__ import annotations

import logging
import sys

from api.http.logs import FoldLibraryRepeats


def _record(
    name: str, msg: str, level: int = logging.WARNING, error: bool = False
) -> logging.LogRecord:
    exc_info = None
    if error:
        try:
            raise ConnectionRefusedError("refused")
        except ConnectionRefusedError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, level, __file__, 1, msg, None, exc_info)


def test_a_librarys_repeated_warning_passes_once_per_period_with_a_count() -> None:
    now = [0.0]
    fold = FoldLibraryRepeats(every=10.0, clock=lambda: now[0])
    passed = []
    for second in range(25):
        now[0] = float(second)
        for _ in range(40):  # forty retries a second, as aiokafka during a broker outage
            record = _record("aiokafka.conn", "Unable to connect to node")
            if fold.filter(record):
                passed.append(record.getMessage())
    assert len(passed) == 3, passed
    assert passed[1] == "Unable to connect to node (repeated 399 more times in 10 s)"


def test_our_loggers_and_other_messages_pass() -> None:
    fold = FoldLibraryRepeats(every=10.0, clock=lambda: 0.0)
    assert all(fold.filter(_record("api.wiring.app", "event=x")) for _ in range(5))
    assert fold.filter(_record("asyncpg.pool", "one"))
    assert fold.filter(_record("asyncpg.pool", "another"))
    assert fold.filter(_record("grpc_not_a_library", "x"))
    assert fold.filter(_record("grpc_not_a_library", "x"))


def test_a_librarys_retry_warning_loses_its_traceback_but_names_the_error() -> None:
    fold = FoldLibraryRepeats(every=10.0, clock=lambda: 0.0)
    record = _record("asyncpg.pool", "Failed to restore the pool connection floor", error=True)
    assert fold.filter(record)
    assert record.exc_info is None
    assert record.getMessage().endswith("(ConnectionRefusedError: refused)")
