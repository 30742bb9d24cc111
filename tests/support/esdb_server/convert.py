"""Mappings between the port's numbers and EventStoreDB's, and port events to protobuf events.

EventStoreDB revisions start at 0 where the port's versions start at 1. Commit positions are a
non-dense, invertible function of the store's positions, so that clients cannot rely on density
(EventStoreDB's positions are byte offsets in the transaction log) and never see 0 for an event.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from esdbclient.protos.Grpc import shared_pb2

from eventstore.port import ANY, EXISTS, NO_STREAM, ExpectedVersion, RecordedEvent

POSITION_SCALE = 17
POSITION_OFFSET = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def commit_of(position: int) -> int:
    """The commit (and prepare) position EventStoreDB clients see for a store position."""
    return position * POSITION_SCALE + POSITION_OFFSET


def first_position_at_or_after(commit: int) -> int:
    """The smallest store position whose commit position is >= `commit` (at least 0)."""
    if commit <= POSITION_OFFSET:
        return 0
    return -((POSITION_OFFSET - commit) // POSITION_SCALE)


def last_position_at_or_before(commit: int) -> int:
    """The largest store position whose commit position is <= `commit` (-1: none)."""
    if commit < POSITION_OFFSET:
        return -1
    return (commit - POSITION_OFFSET) // POSITION_SCALE


def revision_of(version: int) -> int:
    """EventStoreDB revision of a port version."""
    return version - 1


def ticks_of(moment: datetime) -> int:
    """100-ns ticks since the Unix epoch, EventStoreDB's `created` metadata."""
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def expected_from_options(
    options: Any, revision_field: str = "revision", oneof: str = "expected_stream_revision"
) -> ExpectedVersion:
    """Reads the expected-revision oneof of Append/Delete/Tombstone/BatchAppend options."""
    kind = options.WhichOneof(oneof)
    if kind == "no_stream":
        return NO_STREAM
    if kind == "stream_exists":
        return EXISTS
    if kind == revision_field:
        return int(getattr(options, revision_field)) + 1
    return ANY


def describe_expected(expected: ExpectedVersion) -> str:
    """EventStoreDB's rendering of an expected version in messages (-1 no stream, -2 any, -4)."""
    if expected is NO_STREAM:
        return "-1"
    if expected is ANY:
        return "-2"
    if expected is EXISTS:
        return "-4"
    assert isinstance(expected, int)
    return str(expected - 1)


def uuid_message(value: uuid.UUID) -> Any:
    """A `shared.UUID` in the string form the clients request."""
    return shared_pb2.UUID(string=str(value))


def parse_uuid(message: Any) -> uuid.UUID:
    """A `shared.UUID` in either form (clients send strings; structured is two signed longs)."""
    if message.WhichOneof("value") == "string":
        return uuid.UUID(message.string)
    most = message.structured.most_significant_bits & 0xFFFFFFFFFFFFFFFF
    least = message.structured.least_significant_bits & 0xFFFFFFFFFFFFFFFF
    return uuid.UUID(int=(most << 64) | least)


def fill_recorded(target: Any, event: RecordedEvent) -> None:
    """Fills a `ReadResp.ReadEvent.RecordedEvent` (streams or persistent) from a port event."""
    target.id.CopyFrom(uuid_message(event.id))
    target.stream_identifier.stream_name = event.stream.encode("utf8")
    target.stream_revision = revision_of(event.version)
    target.commit_position = commit_of(event.position)
    target.prepare_position = commit_of(event.position)
    target.metadata.update(system_metadata(event))
    target.custom_metadata = event.metadata
    target.data = event.data


def system_metadata(event: RecordedEvent) -> Mapping[str, str]:
    """The `type`, `content-type` and `created` entries EventStoreDB sends with every event."""
    return {
        "type": event.type,
        "content-type": event.content_type,
        "created": str(ticks_of(event.recorded_at)),
    }
