"""How `orders parked list` prints parked events, and where their reason comes from."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson

from api.graphql.parked_events import parked_reason
from api.wiring.parked_cli import format_parked
from eventstore.port import RecordedEvent

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _event(
    stream: str, version: int, type_: str, link: RecordedEvent | None = None
) -> RecordedEvent:
    return RecordedEvent(
        id=uuid.uuid4(),
        stream=stream,
        type=type_,
        version=version,
        position=version * 100,
        data=b"{}",
        metadata=b"{}",
        recorded_at=AT,
        link=link,
    )


def _esdb_link(metadata: bytes) -> RecordedEvent:
    """A parked link as EventStoreDB writes it (camelCase `ParkedMessageMetadata`)."""
    return RecordedEvent(
        id=uuid.uuid4(),
        stream="$persistentsubscription-$all::orders-view-parked",
        type="$>",
        version=1,
        position=900,
        data=b"1@order-a",
        metadata=metadata,
        recorded_at=AT,
    )


def test_the_reason_is_eventstoredbs_when_it_recorded_one() -> None:
    metadata = orjson.dumps(
        {
            "added": "2026-01-01T00:00:00Z",
            "reason": "Reached retry count of 50",
            "subscriptionEventNumber": 1,
        }
    )
    assert parked_reason(_event("order-a", 2, "PaymentTaken", _esdb_link(metadata))) == (
        "Reached retry count of 50"
    )
    nacked = orjson.dumps({"reason": "Client explicitly NAK'ed message.\n"})
    assert parked_reason(_event("order-a", 2, "X", _esdb_link(nacked))) == (
        "Client explicitly NAK'ed message."
    )
    for unknown in (b"", b"not json", b"[]", b'{"reason": 3}', b'{"reason": " "}'):
        assert parked_reason(_event("order-a", 2, "X", _esdb_link(unknown))) is None
    assert parked_reason(_event("order-a", 2, "X")) is None  # the SQL stores keep no link


def test_one_aligned_line_per_event_under_a_header() -> None:
    reason = orjson.dumps({"reason": "Reached retry count of 50"})
    text = format_parked(
        [
            _event("order-a", 2, "PaymentTaken", _esdb_link(reason)),
            _event("order-long-id", 12, "OrderShipped"),
        ]
    )
    assert text.splitlines() == [
        "STREAM         VERSION  POSITION  TYPE          REASON",
        "order-a              2       200  PaymentTaken  Reached retry count of 50",
        "order-long-id       12      1200  OrderShipped  -",
    ]
    assert format_parked([]) == ""
