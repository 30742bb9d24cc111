"""The `EventStore` port, shaped after EventStoreDB's own client API: the store (streams, the
global log, catch-up subscriptions, metadata) and, apart, its persistent-subscription groups
(`SubscriptionGroups`, reached as `StoreWithGroups.groups`).

Versions follow the contract: a stream's version is the number of events in it, so its first event
has version 1 (EventStoreDB revision 0). Positions are commit positions in the global log: integers
that strictly increase, neither dense nor starting at any particular value.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


class StreamState(enum.Enum):
    """An expectation about a stream that is not an exact version."""

    NO_STREAM = "no_stream"
    ANY = "any"
    EXISTS = "exists"


NO_STREAM = StreamState.NO_STREAM
ANY = StreamState.ANY
EXISTS = StreamState.EXISTS

ExpectedVersion = int | StreamState
"""An exact version (the stream must hold exactly that many events, >= 1) or a `StreamState`."""


def expect_version(version: int) -> ExpectedVersion:
    """The expectation for a stream last read at `version` (0: it did not exist)."""
    return NO_STREAM if version == 0 else version


@dataclass(frozen=True, slots=True, kw_only=True)
class NewEvent:
    """An event proposed for appending. `id` makes retries idempotent."""

    id: uuid.UUID
    type: str
    data: bytes
    metadata: bytes = b"{}"
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedEvent:
    """An event as the store holds it."""

    id: uuid.UUID
    stream: str
    type: str
    version: int
    position: int
    data: bytes
    metadata: bytes
    recorded_at: datetime
    content_type: str = "application/json"
    # Persistent-subscription deliveries only: how often it was delivered before, and the id to ack
    # (a link's id when the event arrived through a link, such as a replayed parked event).
    retry_count: int = 0
    ack_id: uuid.UUID | None = None
    # The link event it was delivered through, where a store has links (EventStoreDB's `$>`).
    link: RecordedEvent | None = None

    @property
    def is_system(self) -> bool:
        return self.type.startswith("$") or self.stream.startswith("$")


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendResult:
    """Where an append left the stream: its new version and the last event's position."""

    version: int
    position: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    """Selects events of the global log. Empty tuples select everything of that kind.

    System events (types or streams starting with `$`) are excluded unless `include_system`.
    """

    event_types: tuple[str, ...] = ()
    stream_prefixes: tuple[str, ...] = ()
    include_system: bool = False

    def matches(self, event: RecordedEvent) -> bool:
        if event.is_system and not self.include_system:
            return False
        if self.event_types and event.type not in self.event_types:
            return False
        return not self.stream_prefixes or event.stream.startswith(self.stream_prefixes)


# ---------------------------------------------------------------------------------------------
# Errors. Adapters translate their client's errors into these at the boundary.


class EventStoreError(Exception):
    """Base of everything the port raises."""


class WrongExpectedVersion(EventStoreError):
    """The stream is not where the append expected it; nothing was written."""

    def __init__(self, stream: str, expected: ExpectedVersion, actual: int | None) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual  # the stream's current version, None when it does not exist
        super().__init__(f"stream {stream!r}: expected {expected}, actual {actual}")


class StreamDeleted(EventStoreError):
    """The stream was tombstoned: it can never be read or written again."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        super().__init__(f"Event stream '{stream}' is deleted.")


class StoreUnavailable(EventStoreError):
    """The store cannot be reached (or the adapter was closed)."""


class SubscriptionGroupExists(EventStoreError):
    """A persistent-subscription group of that name already exists."""


class SubscriptionGroupNotFound(EventStoreError):
    """No persistent-subscription group of that name."""


class MaxSubscribersReached(EventStoreError):
    """The group already has its maximum number of consumers."""


class SubscriptionDropped(EventStoreError):
    """A live subscription ended because of the server (deleted group, stopped store)."""


# ---------------------------------------------------------------------------------------------
# Persistent subscriptions (competing consumers with server-side checkpoints).


class ConsumerStrategy(enum.StrEnum):
    DISPATCH_TO_SINGLE = "DispatchToSingle"
    ROUND_ROBIN = "RoundRobin"
    PINNED = "Pinned"
    PINNED_BY_CORRELATION = "PinnedByCorrelation"  # pinned by `$correlationId`, else the stream


class NackAction(enum.Enum):
    """What to do with an event a consumer could not handle."""

    PARK = "park"
    RETRY = "retry"
    SKIP = "skip"
    STOP = "stop"


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionSettings:
    """Settings of a persistent-subscription group, EventStoreDB's defaults unless said."""

    # inclusive: a position ($all) or a version (stream); None = the start
    start_from: int | None = None
    from_end: bool = False
    filter: EventFilter = field(default_factory=EventFilter)  # $all groups only
    message_timeout: float = 30.0  # seconds; 0 = never
    max_retry_count: int = 10
    consumer_strategy: ConsumerStrategy = ConsumerStrategy.ROUND_ROBIN
    max_subscriber_count: int = 0  # 0 = unbounded
    checkpoint_after: float = 2.0  # seconds
    min_checkpoint_count: int = 10
    max_checkpoint_count: int = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionInfo:
    """What the store knows of one group."""

    group: str
    stream: str | None  # None: the global log
    settings: SubscriptionSettings
    status: str
    checkpoint: int | None  # last checkpointed position ($all) or version (stream)
    parked: int
    connections: int


class PersistentSubscription(Protocol):
    """One consumer's connection to a group: iterate for deliveries, ack or nack each."""

    def __aiter__(self) -> AsyncIterator[RecordedEvent]: ...

    async def ack(self, event: RecordedEvent) -> None: ...

    async def nack(self, event: RecordedEvent, action: NackAction) -> None: ...

    async def stop(self) -> None: ...


# ---------------------------------------------------------------------------------------------


class EventStore(Protocol):
    """An append-only store of streams and one global log over all of them."""

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        """Append atomically. Re-appending the same ids at the same expectation is a no-op that
        returns the original result. Raises `WrongExpectedVersion`, `StreamDeleted`."""
        ...

    async def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Events of one stream from `from_version` (inclusive; default: the first event, or the
        last one backwards). A stream that does not exist reads as empty."""
        ...

    async def read_all(
        self,
        *,
        from_position: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
        filter: EventFilter | None = None,
    ) -> list[RecordedEvent]:
        """Events of the global log from `from_position` (inclusive), filtered."""
        ...

    def subscribe_stream(
        self, stream: str, *, after_version: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Catch-up subscription: events after `after_version` (exclusive; None: all), then live."""
        ...

    def subscribe_all(
        self, *, after_position: int | None = None, filter: EventFilter | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Catch-up subscription to the global log after `after_position` (exclusive), then live."""
        ...

    async def head_position(self) -> int:
        """The position of the last event in the global log (0 when empty)."""
        ...

    async def delete_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Soft delete: reads say the stream does not exist; appending again resumes numbering."""
        ...

    async def tombstone_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Hard delete: the stream can never be read or written again."""
        ...

    async def get_stream_metadata(self, stream: str) -> dict[str, object]:
        """The stream's metadata (`$maxCount`, ...), empty when none was set."""
        ...

    async def set_stream_metadata(
        self, stream: str, metadata: dict[str, object], expected: ExpectedVersion = ANY
    ) -> None:
        """Replace the stream's metadata. `$maxCount` is honoured on stream reads."""
        ...

    async def close(self) -> None:
        """Stop its subscriptions (and groups, when it runs them) and close its connections."""
        ...


class SubscriptionGroups(Protocol):
    """Persistent-subscription groups: competing consumers with server-side checkpoints, with
    EventStoreDB's semantics. `stream=None` means a group on the global log."""

    async def create_subscription(
        self, group: str, *, stream: str | None = None, settings: SubscriptionSettings
    ) -> None: ...

    async def update_subscription(
        self, group: str, *, stream: str | None = None, settings: SubscriptionSettings
    ) -> None: ...

    async def delete_subscription(self, group: str, *, stream: str | None = None) -> None: ...

    async def get_subscription_info(
        self, group: str, *, stream: str | None = None
    ) -> SubscriptionInfo: ...

    async def list_subscriptions(self, *, stream: str | None = None) -> list[SubscriptionInfo]: ...

    async def read_subscription(
        self, group: str, *, stream: str | None = None, buffer_size: int = 100
    ) -> PersistentSubscription: ...

    async def list_parked(
        self, group: str, *, stream: str | None = None, limit: int = 100
    ) -> list[RecordedEvent]: ...

    async def replay_parked(self, group: str, *, stream: str | None = None) -> None: ...


class StoreWithGroups(EventStore, Protocol):
    """A store that also runs persistent-subscription groups (every adapter here does)."""

    @property
    def groups(self) -> SubscriptionGroups:
        """Its groups."""
        ...


@runtime_checkable
class WritePathCheck(Protocol):
    """What an adapter that can tell whether appends work now offers the health check."""

    async def check_writes(self) -> None:
        """Return when appends can be made durable now; raise StoreUnavailable when not."""
        ...


MARKED_VERSION = "markedVersion"
"""The key, in a mark event's JSON metadata, of the version of the marked stream the mark points
to (a snapshot's: the version it covers). A mark without it points nowhere."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkedRead:
    """A stream's mark and the events it points to, as read together.

    `mark` is the newest readable event of the mark stream (None: none, or the stream is deleted).
    `from_version` is where `events` start: the version the mark's metadata names
    (`MARKED_VERSION`), 1 without a mark, None when the mark names no version (then `events` is
    empty: nothing was read)."""

    mark: RecordedEvent | None
    from_version: int | None
    events: list[RecordedEvent]


@runtime_checkable
class MarkedReads(Protocol):
    """What an adapter that reads a stream's mark and the events it points to in one read offers
    (`eventstore.marked.read_from_mark` composes two reads for the others)."""

    async def read_from_mark(self, mark_stream: str, stream: str, *, limit: int) -> MarkedRead:
        """Read the newest readable event of `mark_stream` and up to `limit` events of `stream`
        from the version its metadata names (`MARKED_VERSION`; from 1 without a mark), both in
        one read."""
        ...
