"""What the relay publishes for one stored event: pure, no I/O.

The key is the order id (so one order's events land on one partition, in order). The value is the
event in the contract's wire format, upcast to the current schema, inside an envelope that says
which event it is. Headers carry the same identity for consumers that route before parsing, and
the W3C `traceparent` of the command that wrote the event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from application.codec import decode_record
from domain.events import EVENT_TYPE_NAMES, order_id_of
from domain.upcasting import CURRENT_SCHEMA_VERSION
from eventstore.port import RecordedEvent
from telemetry.tracing import METADATA_KEY as TRACEPARENT_KEY
from telemetry.tracing import TRACEPARENT

HEADER_EVENT_ID = "event-id"
HEADER_TYPE = "event-type"
HEADER_VERSION = "event-version"
HEADER_POSITION = "event-position"
HEADER_CORRELATION_ID = "correlation-id"
HEADER_TRACEPARENT = TRACEPARENT
"""The W3C trace context of the command that wrote the event, so a consumer's spans join its
trace."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaMessage:
    """One record for the topic."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


_CURRENT_METADATA = b'{"schemaVersion":%d,' % CURRENT_SCHEMA_VERSION
"""How the codec starts the metadata of every event it writes in today's schema."""


def to_message(record: RecordedEvent) -> KafkaMessage:
    """The record of a stored order event. Raises what `decode_record` raises for an event that
    cannot be upcast (an unknown schema version)."""
    data: Any
    if record.type in EVENT_TYPE_NAMES and record.metadata.startswith(_CURRENT_METADATA):
        # Written by this code in today's schema: the stored data is the wire format already, so
        # it is checked to be JSON and passed through rather than rebuilt (the relay's hot path).
        orjson.loads(record.data)
        data = orjson.Fragment(record.data)
        metadata = orjson.loads(record.metadata)
    else:
        decoded = decode_record(record)
        data, metadata = decoded.data, decoded.metadata
    order_id = order_id_of(record.stream)
    correlation = metadata.get("$correlationId")
    envelope: dict[str, Any] = {
        "eventId": str(record.id),
        "type": record.type,
        "orderId": order_id,
        "streamId": record.stream,
        "version": record.version,
        # a decimal string, as everywhere in the contract: it exceeds 2^53
        "position": str(record.position),
        "data": data,
        "metadata": metadata,
    }
    headers = [
        (HEADER_EVENT_ID, str(record.id).encode()),
        (HEADER_TYPE, record.type.encode()),
        (HEADER_VERSION, str(record.version).encode()),
        (HEADER_POSITION, str(record.position).encode()),
    ]
    if isinstance(correlation, str):
        headers.append((HEADER_CORRELATION_ID, correlation.encode()))
    traceparent = metadata.get(TRACEPARENT_KEY)
    if isinstance(traceparent, str):
        headers.append((HEADER_TRACEPARENT, traceparent.encode()))
    return KafkaMessage(key=order_id.encode(), value=orjson.dumps(envelope), headers=headers)
