"""Persistent-subscription groups as rows of the SQL stores' tables, and back: the columns and
parameters both stores write (each in its own placeholder style and column types)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventstore.persistent.records import (
    ALL_KEY,
    GroupDefinition,
    GroupRecord,
    settings_from_json,
    settings_to_json,
    stream_key,
)
from eventstore.port import RecordedEvent

GROUP_COLUMNS = "stream_key, group_name, settings, start_after, checkpoint"
"""A group row's columns, in the order of `group_params` and `group_record`."""

PARKED_COLUMNS = (
    "stream_key, group_name, event_id, stream, type, version, position, data, metadata,"
    " content_type, recorded_at"
)
"""A parked row's columns, in the order of `parked_params`."""


def group_params(record: GroupRecord) -> tuple[str, str, str, int | None, int | None]:
    """A new group's row (`GROUP_COLUMNS`)."""
    return (
        stream_key(record.stream),
        record.group,
        settings_to_json(record.settings).decode(),
        record.start_after,
        record.checkpoint,
    )


def settings_params(definition: GroupDefinition) -> tuple[str, int | None, str, str]:
    """An update's values: settings, start point; then the group's key and name."""
    return (
        settings_to_json(definition.settings).decode(),
        definition.start_after,
        stream_key(definition.stream),
        definition.group,
    )


def group_record(row: Sequence[Any]) -> GroupRecord:
    """A group from its row (`GROUP_COLUMNS`)."""
    key, group, settings, start_after, checkpoint = row
    return GroupRecord(
        group=group,
        stream=None if key == ALL_KEY else key,
        settings=settings_from_json(settings),
        start_after=start_after,
        checkpoint=checkpoint,
    )


def groups_filter(
    stream: str | None, *, every_stream: bool, placeholder: str
) -> tuple[str, tuple[str, ...]]:
    """The condition and parameters that select the groups on `stream` ($all when None), or
    on every target when `every_stream`."""
    if every_stream:
        return "", ()
    return f" WHERE stream_key = {placeholder}", (stream_key(stream),)


def parked_params(
    group: str, stream: str | None, events: Sequence[RecordedEvent], *, as_text: bool
) -> list[tuple[object, ...]]:
    """The rows (`PARKED_COLUMNS`) of events parked by a group; `as_text`: the id and the time
    as text (SQLite has no such types)."""
    key = stream_key(stream)
    return [
        (
            key,
            group,
            str(e.id) if as_text else e.id,
            e.stream,
            e.type,
            e.version,
            e.position,
            e.data,
            e.metadata,
            e.content_type,
            e.recorded_at.isoformat() if as_text else e.recorded_at,
        )
        for e in events
    ]
