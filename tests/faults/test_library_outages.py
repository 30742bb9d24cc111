"""Library loggers folded into the outage rule (`eventstore.outage_log.LibraryOutages`): the
Kafka client's first complaint is its part's one outage line and the rest are counted into it;
the store clients' lines are counted while their part's outage is open and pass otherwise."""

from __future__ import annotations

import logging

import pytest

from eventstore.outage_log import LibraryOutages, OutageLog


def _record(name: str, msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, ("x",) if "%s" in msg else None, None)


class Lines:
    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    def __call__(self) -> list[str]:
        return self._caplog.messages


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Lines:
    caplog.set_level(logging.INFO, logger="test-outages")
    return Lines(caplog)


def _outages() -> OutageLog:
    return OutageLog(quiet_period=10.0, clock=lambda: 0.0, logger=logging.getLogger("test-outages"))


def test_the_kafka_clients_complaints_are_one_outage_line_then_a_count(lines: Lines) -> None:
    outages = _outages()
    fold = LibraryOutages(outages)
    passed = [fold.filter(_record("aiokafka.conn", "Unable connect to node %s")) for _ in range(50)]
    assert not any(passed)
    assert lines() == ["event=outage part=kafka error=aiokafka: Unable connect to node x"]
    outages.recovered("kafka")
    assert lines()[-1] == "event=outage_over part=kafka failures=50 lasted_s=0.0"


def test_the_init_producer_id_complaint_is_left_to_the_relay(lines: Lines) -> None:
    fold = LibraryOutages(_outages())
    record = _record(
        "aiokafka.producer.sender", "Unexpected error during InitProducerIdRequest: %s"
    )
    assert not fold.filter(record)
    assert lines() == []


def test_store_client_lines_pass_unless_their_part_is_out(lines: Lines) -> None:
    outages = _outages()
    fold = LibraryOutages(outages)
    assert fold.filter(_record("asyncpg.pool", "Failed to restore the pool connection floor"))
    outages.failed("eventStore", ConnectionRefusedError("refused"))
    assert not fold.filter(_record("asyncpg.pool", "Failed to restore the pool connection floor"))
    assert not fold.filter(_record("esdbclient", "retrying"))
    outages.recovered("eventStore")
    assert lines()[-1].startswith("event=outage_over part=eventStore failures=3 ")


def test_critical_debug_and_our_own_lines_pass() -> None:
    outages = _outages()
    outages.failed("kafka", "down")
    fold = LibraryOutages(outages)
    assert fold.filter(_record("aiokafka", "fatal", logging.CRITICAL))
    assert fold.filter(_record("aiokafka.conn", "Request ...", logging.DEBUG))
    assert fold.filter(_record("relay.worker", "event=relay_parked", logging.ERROR))


def test_asyncios_report_of_an_orphaned_pool_release_is_counted_not_printed(
    lines: Lines,
) -> None:
    import asyncpg

    outages = _outages()
    fold = LibraryOutages(outages)
    error = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    message = (
        "Task exception was never retrieved\nfuture: <Task finished name='Task-9' "
        "coro=<PoolConnectionHolder.release() done>"
    )
    record = logging.LogRecord(
        "asyncio", logging.ERROR, __file__, 1, message, None, (type(error), error, None)
    )
    assert not fold.filter(record)
    assert lines() == [
        "event=outage part=eventStore error=ConnectionDoesNotExistError: connection was closed "
        "in the middle of operation"
    ]
    other = logging.LogRecord(
        "asyncio", logging.ERROR, __file__, 1, "Task exception was never retrieved", None, None
    )
    assert fold.filter(other)  # asyncio's other reports are bugs: they pass
