"""Raw events as other services or last year's code wrote them, straight through the port."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from eventstore.port import NewEvent, RecordedEvent

LEGACY_PLACED_DATA = b'{"customerId": "cust-legacy", "items": ["p-1", "p-2"], "total": 25.10}'
"""OrderPlaced v1 (CONTRACT section 1): bare product ids, the total a JSON number."""


def legacy_placed(
    data: bytes = LEGACY_PLACED_DATA, metadata: bytes = b'{"occurredAt": "2023-01-02T03:04:05Z"}'
) -> NewEvent:
    """An OrderPlaced at schema version 1: no schemaVersion in its metadata."""
    return NewEvent(id=uuid.uuid4(), type="OrderPlaced", data=data, metadata=metadata)


def raw_event(event_type: str, data: dict[str, Any], metadata: dict[str, Any]) -> NewEvent:
    """Any event, data and metadata as given."""
    return NewEvent(
        id=uuid.uuid4(), type=event_type, data=orjson.dumps(data), metadata=orjson.dumps(metadata)
    )


def recorded(
    event_type: str,
    data: bytes,
    metadata: bytes = b"{}",
    *,
    stream: str = "order-legacy-1",
    version: int = 1,
) -> RecordedEvent:
    """A stored event as a store would hand it to the codec."""
    return RecordedEvent(
        id=uuid.uuid4(),
        stream=stream,
        type=event_type,
        version=version,
        position=100 + version,
        data=data,
        metadata=metadata,
        recorded_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


UPCAST_ITEMS = [
    {"id": "p-1", "name": "Unknown", "price": "0", "qty": 1},
    {"id": "p-2", "name": "Unknown", "price": "0", "qty": 1},
]
"""What the legacy items read as."""
