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
