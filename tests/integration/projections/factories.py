"""Builds recorded order events as a store would hand them out, for projection tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from application.codec import DecodedEvent, EventContext, decode_record, encode
from domain.events import LineItem, OrderEvent, order_stream
from eventstore.port import RecordedEvent

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def item(product_id: str, price: str = "10.00", qty: int = 1, name: str = "Thing") -> LineItem:
    """A line item with sensible defaults."""
    return LineItem(product_id=product_id, name=name, price=Decimal(price), qty=qty)


class Log:
    """An in-memory global log of order events with dense positions from `start`."""

    def __init__(self, start: int = 1000) -> None:
        self.records: list[RecordedEvent] = []
        self.versions: dict[str, int] = {}
        self.next_position = start

    def record(self, order_id: str, event: OrderEvent) -> RecordedEvent:
        """Append `event` to the order's stream; returns the recorded event."""
        version = self.versions.get(order_id, 0) + 1
        self.versions[order_id] = version
        position = self.next_position
        self.next_position += 7  # positions are not dense
        moment = EPOCH + timedelta(seconds=len(self.records))
        context = EventContext(
            correlation_id="c", causation_id="c", actor="test", occurred_at=moment
        )
        new = encode(event, context, uuid.uuid4())
        recorded = RecordedEvent(
            id=new.id,
            stream=order_stream(order_id),
            type=new.type,
            version=version,
            position=position,
            data=new.data,
            metadata=new.metadata,
            recorded_at=moment,
        )
        self.records.append(recorded)
        return recorded

    def decoded(self) -> list[DecodedEvent]:
        """Every event, decoded, in log order."""
        return [decode_record(r) for r in self.records]
