"""A row of the log as the port's `RecordedEvent`, for the stores that keep the log in SQL tables
(the embedded SQLite store and PostgreSQL): both select an event as the tuple
(position, id as 16 bytes, stream, version, type, data, metadata, content type, recorded at in
microseconds since the epoch)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from eventstore.port import RecordedEvent

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """A UTC timestamp as integer microseconds since the epoch (exact, sortable)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_new_uuid = object.__new__
_set_attribute = object.__setattr__


# `RecordedEvent` is a frozen dataclass: its generated __init__ sets every field through
# `object.__setattr__`, which was half the cost of turning a row into an event. Rows are built
# here by setting its slots directly, the way `copy` and `pickle` rebuild one; the fields are
# checked below so a field added to the port cannot be silently left unset.
_EVENT_FIELDS = (
    "id",
    "stream",
    "type",
    "version",
    "position",
    "data",
    "metadata",
    "recorded_at",
    "content_type",
    "retry_count",
    "ack_id",
    "link",
)
if tuple(f.name for f in dataclasses.fields(RecordedEvent)) != _EVENT_FIELDS:  # pragma: no cover
    raise ImportError("RecordedEvent's fields changed: update eventstore.rows")
(
    _set_id,
    _set_stream,
    _set_type,
    _set_version,
    _set_position,
    _set_data,
    _set_metadata,
    _set_recorded_at,
    _set_content_type,
    _set_retry_count,
    _set_ack_id,
    _set_link,
) = (getattr(RecordedEvent, name).__set__ for name in _EVENT_FIELDS)
_UUID = uuid.UUID
_UUID_UNKNOWN = uuid.SafeUUID.unknown
_from_bytes = int.from_bytes


def row_to_event(row: tuple[Any, ...]) -> RecordedEvent:
    """A row selected with `EVENT_COLUMNS` as the port's `RecordedEvent` (equal to the one its
    constructor would build; see the comment above on how)."""
    position, raw_id, stream, version, type_, data, metadata, content_type, recorded_at = row
    if len(raw_id) != 16:
        raise ValueError(f"an event id is 16 bytes, got {len(raw_id)}")
    event_id = _new_uuid(_UUID)
    _set_attribute(event_id, "int", _from_bytes(raw_id, "big"))
    _set_attribute(event_id, "is_safe", _UUID_UNKNOWN)
    event = _new_uuid(RecordedEvent)
    _set_id(event, event_id)
    _set_stream(event, stream)
    _set_type(event, type_)
    _set_version(event, version)
    _set_position(event, position)
    _set_data(event, data)
    _set_metadata(event, metadata)
    _set_recorded_at(event, _EPOCH + timedelta(microseconds=recorded_at))
    _set_content_type(event, content_type)
    _set_retry_count(event, 0)
    _set_ack_id(event, None)
    _set_link(event, None)
    return event
