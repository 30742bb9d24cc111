"""From a stored order event to the change it makes to the views: shared by the projector, the
catch-up and the rebuild."""

from __future__ import annotations

from application.codec import decode_record
from domain.events import ORDER_STREAM_PREFIX
from domain.upcasting import UnknownSchemaVersion
from eventstore.port import EventFilter, RecordedEvent
from projections.mapping import ViewChange, change_of

ORDER_EVENTS = EventFilter(stream_prefixes=(ORDER_STREAM_PREFIX,))
"""The events the views are made of."""

DECODE_ERRORS = (UnknownSchemaVersion, ValueError, KeyError, TypeError, ArithmeticError)
"""What decoding a stored event may raise: such an event can never be projected (parked)."""


def to_change(record: RecordedEvent) -> ViewChange:
    """The view change of a stored order event; raises one of DECODE_ERRORS if it has none."""
    return change_of(decode_record(record))
