"""EventStoreDB's view of the embedded store: stream existence, paged `$all` reads, links.

Only the port is used; everything EventStoreDB-specific (hidden system streams, link resolution,
exclusive/inclusive start points) is decided here or in the services.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Sequence

from eventstore.port import (
    EventFilter,
    EventStore,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamDeleted,
)

from .filters import hidden_from_all

PAGE = 256
LINK_TYPE = "$>"
EVERYTHING = EventFilter(include_system=True)


class Backend:
    """The store plus the few derived queries the gRPC services need."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> tuple[int, int]:
        """Appends; returns (new version, last event's position). Raises the port's errors."""
        result = await self.store.append(stream, events, expected)
        return result.version, result.position

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
