"""Port values <-> esdbclient values: expectations, events, filters.

The port counts versions from 1 where EventStoreDB counts revisions from 0 (version = revision + 1);
positions are EventStoreDB commit positions unchanged.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

from esdbclient import NewEvent as EsdbNewEvent
from esdbclient import RecordedEvent as EsdbRecordedEvent
from esdbclient.client import DEFAULT_EXCLUDE_FILTER
from esdbclient.streams import StreamState as EsdbStreamState

from eventstore.port import ANY, EXISTS, NO_STREAM, EventFilter, ExpectedVersion, NewEvent
from eventstore.port import RecordedEvent as PortRecordedEvent

_EPOCH = datetime.fromtimestamp(0, UTC)


def to_esdb_expected(expected: ExpectedVersion) -> int | EsdbStreamState:
    """An expectation as esdbclient's `current_version`."""
    if expected is NO_STREAM:
        return EsdbStreamState.NO_STREAM
    if expected is ANY:
        return EsdbStreamState.ANY
    if expected is EXISTS:
        return EsdbStreamState.EXISTS
    if isinstance(expected, int) and expected >= 1:
        return expected - 1
    raise ValueError(f"expected version must be >= 1 or a StreamState, got {expected!r}")


def to_esdb_event(event: NewEvent) -> EsdbNewEvent:
    """A proposed event as esdbclient's."""
    content_type = cast(Literal["application/json", "application/octet-stream"], event.content_type)
    return EsdbNewEvent(
        id=event.id,
        type=event.type,
        data=event.data,
        metadata=event.metadata,
        content_type=content_type,
    )


def to_recorded(event: EsdbRecordedEvent, *, delivery: bool = False) -> PortRecordedEvent:
    """esdbclient's recorded event as the port's.

    For a persistent-subscription `delivery`, sets retry_count and ack_id (the link's id when the
    event arrived through a link, as EventStoreDB expects acks for parked-event replays).
    """
    # Stream reads carry positions on EventStoreDB >= 22.10; an older server would leave them out.
    position = event.commit_position if event.commit_position is not None else -1
    return PortRecordedEvent(
        id=event.id,
        stream=event.stream_name,
        type=event.type,
        version=event.stream_position + 1,
        position=position,
        data=event.data,
        metadata=event.metadata,
        recorded_at=event.recorded_at or _EPOCH,
        content_type=event.content_type,
        retry_count=(event.retry_count or 0) if delivery else 0,
        ack_id=event.ack_id if delivery else None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerFilter:
    """The part of an `EventFilter` EventStoreDB can apply itself, as esdbclient's arguments.

    EventStoreDB applies one regular expression, to either event types or stream names; the
    adapter still checks `EventFilter.matches` on everything the server sends, which covers the
    rest (a filter on both types and prefixes, system streams with non-`$` event types).
    """

    filter_include: tuple[str, ...] = ()
    filter_exclude: tuple[str, ...] = ()
    filter_by_stream_name: bool = False


def server_filter(event_filter: EventFilter) -> ServerFilter:
    """The narrowest single expression for `event_filter`.

    esdbclient wraps includes as `^(a|b...)$` (joining with `|` and no group), so each include
    here is one non-capturing group holding all alternatives, escaped.
    """
    if event_filter.event_types:
        alternatives = "|".join(re.escape(t) for t in event_filter.event_types)
        return ServerFilter(filter_include=(f"(?:{alternatives})",))
    if event_filter.stream_prefixes:
        alternatives = "|".join(re.escape(p) for p in event_filter.stream_prefixes)
        return ServerFilter(filter_include=(f"(?:{alternatives}).*",), filter_by_stream_name=True)
    if event_filter.include_system:
        return ServerFilter()
    return ServerFilter(filter_exclude=tuple(DEFAULT_EXCLUDE_FILTER))


def reraise_if_cancelling() -> None:
    """Restore a task cancellation that esdbclient turned into the end of an iteration.

    esdbclient's readers catch `CancelledError` while awaiting the next response and finish the
    iteration instead; a consumer task cancelled there would otherwise carry on as if the
    subscription had ended.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
