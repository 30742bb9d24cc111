"""From a stored order event to the change it makes to the views: shared by the projector, the
catch-up and the rebuild."""

from __future__ import annotations

from application.codec import decode_record
from eventstore.port import RecordedEvent
from projections.mapping import ViewChange, change_of


def to_change(record: RecordedEvent) -> ViewChange:
    """The view change of a stored order event; raises one of `application.codec.DECODE_ERRORS`
    if it has none."""
    return change_of(decode_record(record))
