"""Which consumer of a group an event goes to: EventStoreDB's consumer strategies (round robin,
dispatch to single, pinned by stream, pinned by correlation id)."""

from __future__ import annotations

import contextlib
import zlib

import orjson

from eventstore.persistent.consumer import Consumer
from eventstore.port import ConsumerStrategy, RecordedEvent

_PIN_BUCKETS = 1024  # as EventStoreDB's pinned strategy


class ConsumerChoice:
    """Picks a consumer with room for an event; remembers the round-robin turn and the pins."""

    def __init__(self, consumers: list[Consumer]) -> None:
        self._consumers = consumers  # the group's own list: consumers come and go in it
        self._round_robin = 0
        self._pins: dict[int, Consumer] = {}

    def has_capacity(self) -> bool:
        """Whether any consumer has room for one more event."""
        return any(consumer.capacity > 0 for consumer in self._consumers)

    def forget(self, consumer: Consumer) -> None:
        """A consumer left: its pins go to others as events come."""
        self._pins = {b: c for b, c in self._pins.items() if c is not consumer}

    def clear_pins(self) -> None:
        """Every consumer was dropped: pin afresh."""
        self._pins.clear()

    def choose(self, event: RecordedEvent, strategy: ConsumerStrategy) -> Consumer | None:
        """The consumer `event` goes to now, or None when its strategy has none with room."""
        consumers = self._consumers
        if not consumers:
            return None
        match strategy:
            case ConsumerStrategy.DISPATCH_TO_SINGLE:
                return next((c for c in consumers if c.capacity > 0), None)
            case ConsumerStrategy.PINNED | ConsumerStrategy.PINNED_BY_CORRELATION:
                pinned = self._pinned(_pin_key(event, strategy))
                return pinned if pinned.capacity > 0 else None
            case _:
                count = len(consumers)
                for offset in range(count):
                    candidate = consumers[(self._round_robin + offset) % count]
                    if candidate.capacity > 0:
                        self._round_robin = (self._round_robin + offset + 1) % count
                        return candidate
                return None

    def _pinned(self, pin_key: str) -> Consumer:
        # A new bucket goes to the consumer holding the fewest, as on EventStoreDB.
        bucket = zlib.crc32(pin_key.encode()) % _PIN_BUCKETS
        pinned = self._pins.get(bucket)
        if pinned is None:
            counts = {id(c): 0 for c in self._consumers}
            for owner in self._pins.values():
                counts[id(owner)] += 1
            pinned = min(self._consumers, key=lambda c: counts[id(c)])
            self._pins[bucket] = pinned
        return pinned


def _pin_key(event: RecordedEvent, strategy: ConsumerStrategy) -> str:
    if strategy is ConsumerStrategy.PINNED_BY_CORRELATION:
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            correlation = orjson.loads(event.metadata).get("$correlationId")
            if isinstance(correlation, str):
                return correlation
    return event.stream
