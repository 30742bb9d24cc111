"""EventStoreDB's view of the embedded store: stream existence, paged `$all` reads, links.

Only the port is used; everything EventStoreDB-specific (hidden system streams, link resolution,
exclusive/inclusive start points) is decided here or in the services.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Sequence

from eventstore.port import (
    ANY,
    EXISTS,
    NO_STREAM,
    EventFilter,
    EventStore,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamDeleted,
    WrongExpectedVersion,
)
from eventstore.streams import TRUNCATE_BEFORE, metadata_count, metastream_of

from .filters import hidden_from_all

PAGE = 256
LINK_TYPE = "$>"
EVERYTHING = EventFilter(include_system=True)
DELETED_STREAM = 2**63 - 1
"""The `$tb` a soft delete writes: EventStoreDB's `EventNumber.DeletedStream` (long.MaxValue)."""


class Backend:
    """The store plus the few derived queries the gRPC services need."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> tuple[int, int]:
        """Appends; returns (new version, last event's position). Raises the port's errors.

        Events appended to a soft-deleted stream re-create it as EventStoreDB does: its `$tb`
        becomes the revision of the first new event, so only they are readable."""
        result = await self.store.append(stream, events, expected)
        recreated_from = result.version - len(events)  # a revision: the first new event's
        # Only a stream that had events before can have been deleted: a new one costs no read.
        if events and recreated_from > 0:
            metadata = await self.store.get_stream_metadata(stream)
            if metadata_count(metadata.get(TRUNCATE_BEFORE)) == DELETED_STREAM:
                await self.store.set_stream_metadata(
                    stream, {**metadata, TRUNCATE_BEFORE: recreated_from}
                )
        return result.version, result.position

    async def raw_version(self, stream: str) -> int:
        """How many events were ever appended to the stream, the hidden ones included (what
        EventStoreDB's index calls the last event number, plus one). Raises `StreamDeleted`."""
        return (await self.store.append(stream, [], ANY)).version

    async def soft_delete(self, stream: str, expected: ExpectedVersion) -> None:
        """EventStoreDB's soft delete: a `$metadata` event holding only `$tb` = DELETED_STREAM.

        A stream already soft-deleted can be deleted again with ANY, NO_STREAM or its last
        revision; EXISTS finds it deleted. A stream never written refuses any expectation.
        Raises `WrongExpectedVersion` (actual: the raw version, None when never written),
        `StreamDeleted`."""
        version = await self.raw_version(stream)
        deleted = await self._soft_deleted(stream)
        if version == 0 and not await self.store.read_stream(metastream_of(stream), limit=1):
            raise WrongExpectedVersion(stream, expected, None)
        if expected is EXISTS and deleted:
            raise StreamDeleted(stream)
        fits = (
            expected is ANY
            or (expected is EXISTS and version > 0)
            or (expected is NO_STREAM and (deleted or version == 0))
            or expected == version
        )
        if not fits:
            raise WrongExpectedVersion(stream, expected, version or None)
        await self.store.set_stream_metadata(stream, {TRUNCATE_BEFORE: DELETED_STREAM})

    async def _soft_deleted(self, stream: str) -> bool:
        metadata = await self.store.get_stream_metadata(stream)
        return metadata_count(metadata.get(TRUNCATE_BEFORE)) == DELETED_STREAM

    async def last_event(self, stream: str) -> RecordedEvent | None:
        """The stream's last readable event; None when the stream does not exist (or was deleted).

        Raises `StreamDeleted` for a tombstoned stream.
        """
        events = await self.store.read_stream(stream, backwards=True, limit=1)
        return events[0] if events else None

    async def read_stream(
        self, stream: str, *, from_version: int | None, backwards: bool, limit: int | None
    ) -> list[RecordedEvent]:
        """A page of a stream (see the port for the bounds)."""
        return await self.store.read_stream(
            stream, from_version=from_version, backwards=backwards, limit=limit
        )

    async def iter_stream(
        self, stream: str, *, after_version: int | None
    ) -> AsyncGenerator[RecordedEvent]:
        """The stream's events after `after_version` (exclusive), page by page, to its end now."""
        next_version = 1 if after_version is None else after_version + 1
        while True:
            page = await self.store.read_stream(stream, from_version=next_version, limit=PAGE)
            for event in page:
                yield event
            if len(page) < PAGE:
                return
            next_version = page[-1].version + 1

    async def iter_all(
        self, *, from_position: int | None, backwards: bool = False
    ) -> AsyncGenerator[RecordedEvent]:
        """`$all` as clients see it (hidden streams left out), from a position (inclusive)."""
        position = from_position
        while True:
            if backwards and position is not None and position < 1:
                return
            page = await self.store.read_all(
                from_position=position, backwards=backwards, limit=PAGE, filter=EVERYTHING
            )
            for event in page:
                if not hidden_from_all(event):
                    yield event
            if len(page) < PAGE:
                return
            position = page[-1].position - 1 if backwards else page[-1].position + 1

    async def head_position(self) -> int:
        """The store position of the last event (0 when empty)."""
        return await self.store.head_position()

    async def resolve(self, link: RecordedEvent) -> RecordedEvent | None:
        """The event a `$>` link points at (`<revision>@<stream>`), None when gone."""
        revision_text, _, stream = link.data.decode("utf8", "replace").partition("@")
        try:
            revision = int(revision_text)
        except ValueError:
            return None
        try:
            events = await self.store.read_stream(stream, from_version=revision + 1, limit=1)
        except StreamDeleted:  # a link into a tombstoned stream resolves to nothing
            return None
        if events and events[0].version == revision + 1:
            return events[0]
        return None


def link_to(event: RecordedEvent, *, metadata: bytes = b"{}") -> NewEvent:
    """A new `$>` link event pointing at `event`."""
    return NewEvent(
        id=uuid.uuid4(),
        type=LINK_TYPE,
        data=f"{event.version - 1}@{event.stream}".encode(),
        metadata=metadata,
        content_type="application/octet-stream",
    )
