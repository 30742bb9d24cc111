"""The `EventStore` port on EventStoreDB, through esdbclient's asyncio client.

Nothing outside this adapter sees an esdbclient type or exception. Versions are EventStoreDB
revisions + 1; positions are commit positions.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import AsyncGenerator, Sequence

import grpc
import orjson
from esdbclient import RecordedEvent as EsdbRecordedEvent
from esdbclient.common import AbstractAsyncCatchupSubscription
from esdbclient.exceptions import (
    EventStoreDBClientException,
    NotFound,
    StreamIsDeleted,
    WrongCurrentVersion,
)
from esdbclient.streams import AsyncReadResponse

from eventstore.deadline import DEFAULT_STORE_TIMEOUT, bounded
from eventstore.esdb.client import CurrentRevisionMismatch, EsdbClient
from eventstore.esdb.errors import translated
from eventstore.esdb.mapping import (
    reraise_if_cancelling,
    server_filter,
    to_esdb_event,
    to_esdb_expected,
    to_recorded,
)
from eventstore.esdb.persistent import EsdbGroups
from eventstore.port import (
    ANY,
    EXISTS,
    NO_STREAM,
    AppendResult,
    EventFilter,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StoreUnavailable,
    StreamDeleted,
    SubscriptionDropped,
    WrongExpectedVersion,
)

log = logging.getLogger(__name__)

# EventStoreDB's delete/tombstone conflicts come back as a sentence:
# "Delete failed due to WrongExpectedVersion. Stream: S, Expected version: E, Actual version: A".
_ACTUAL_VERSION = re.compile(r"Actual version: (-?\d+)")
# Page size for $all reads whose filter is partly applied here (the server cannot count for us).
_ALL_PAGE = 500


class EventStoreDBStore:
    """An `EventStore` on an EventStoreDB node or cluster (`esdb://` / `esdb+discover://` URL)."""

    call_timeout: float = DEFAULT_STORE_TIMEOUT
    """STORE_TIMEOUT: seconds each call on a request's path may take (`eventstore.deadline`)."""

    def __init__(self, client: EsdbClient) -> None:
        self._client: EsdbClient | None = client
        self._groups = EsdbGroups(self._live)
        self._write_error: str | None = None  # why the last append could not reach the server

    @bounded
    async def check_writes(self) -> None:
        """Raise StoreUnavailable while appends fail: the last append's outcome, until the server
        answers again (a probe event in the shared log would be seen by every other reader)."""
        if self._write_error is None:
            return
        await self.head_position()
        self._write_error = None

    @classmethod
    async def connect(cls, url: str) -> EventStoreDBStore:
        """Connect (single node: lazily, on the first call; a cluster: discovers the leader)."""
        client = EsdbClient(uri=url)
        with translated():
            await client.connect()
        return cls(client)

    async def close(self) -> None:
        """Stop every subscription and close the connection; later calls raise StoreUnavailable."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _live(self) -> EsdbClient:
        if self._client is None:
            raise StoreUnavailable("the EventStoreDB store is closed")
        return self._client

    # -- streams --------------------------------------------------------------------------------

    @bounded
    async def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        """Append atomically; idempotent for the same event ids at the same expectation."""
        client = self._live()
        if not events:
            return await self._check_expectation(stream, expected)
        try:
            with translated(stream):
                try:
                    done = await client.append_batch(
                        stream,
                        current_version=to_esdb_expected(expected),
                        events=[to_esdb_event(event) for event in events],
                    )
                except CurrentRevisionMismatch as error:
                    actual = None if error.current_revision is None else error.current_revision + 1
                    raise WrongExpectedVersion(stream, expected, actual) from error
        except StoreUnavailable as error:
            self._write_error = str(error)
            raise
        self._write_error = None
        if done.revision is not None:
            version = done.revision + 1
        elif isinstance(expected, int):  # a server that leaves the revision out
            version = expected + len(events)
        else:
            version = (await self._last(stream))[0]
        return AppendResult(version=version, position=done.commit_position)

    async def _check_expectation(self, stream: str, expected: ExpectedVersion) -> AppendResult:
        """An empty append: only the expectation is checked."""
        version, position = await self._last(stream)
        met = (
            expected is ANY
            or (expected is NO_STREAM and version == 0)
            or (expected is EXISTS and version > 0)
            or expected == version
        )
        if not met:
            raise WrongExpectedVersion(stream, expected, version or None)
        return AppendResult(version=version, position=position)

    async def _last(self, stream: str) -> tuple[int, int]:
        """The stream's version and its last event's position ((0, 0): no stream)."""
        last = await self.read_stream(stream, backwards=True, limit=1)
        return (last[0].version, last[0].position) if last else (0, 0)

    @bounded
    async def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Events of one stream from `from_version` (inclusive); a missing stream reads as []."""
        client = self._live()
        if limit is not None and limit <= 0:
            return []
        if from_version is not None and from_version < 1:
            if backwards:
                return []
            from_version = None
        with translated(stream):
            try:
                response = await client.read_stream(
                    stream,
                    stream_position=None if from_version is None else from_version - 1,
                    backwards=backwards,
                    limit=sys.maxsize if limit is None else limit,
                )
                async with response:
                    found = [to_recorded(event) async for event in response]
                    await _ended_completely(response, stream)
            except NotFound:
                return []
        return found

    @bounded
    async def read_all(
        self,
        *,
        from_position: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
        filter: EventFilter | None = None,
    ) -> list[RecordedEvent]:
        """Events of the global log from `from_position` (inclusive), filtered."""
        event_filter = filter or EventFilter()
        if limit is not None and limit <= 0:
            return []
        found: list[RecordedEvent] = []
        cursor = from_position
        skip: int | None = None  # a position already taken, which the next page may repeat
        if backwards and from_position is not None:
            # EventStoreDB reads $all backwards from a position exclusively (the position is where
            # an event starts); the port's is inclusive, so fetch the event at it first.
            at = await self._read_all_page(from_position, False, 1, event_filter)
            found.extend(e for e in at if e.position == from_position and event_filter.matches(e))
            skip = from_position
        while limit is None or len(found) < limit:
            wanted = _ALL_PAGE if limit is None else limit - len(found)
            request = wanted + (0 if skip is None else 1)
            page = await self._read_all_page(cursor, backwards, request, event_filter)
            fresh = [e for e in page if e.position != skip]
            found.extend(e for e in fresh if event_filter.matches(e))
            if len(page) < request or not fresh:
                break
            cursor = skip = page[-1].position
        return found if limit is None else found[:limit]

    async def _read_all_page(
        self, position: int | None, backwards: bool, limit: int, event_filter: EventFilter
    ) -> list[RecordedEvent]:
        """One server read of $all with the part of the filter the server applies."""
        client = self._live()
        narrowed = server_filter(event_filter)
        with translated():
            response = await client.read_all(
                commit_position=position,
                backwards=backwards,
                filter_include=narrowed.filter_include,
                filter_exclude=narrowed.filter_exclude,
                filter_by_stream_name=narrowed.filter_by_stream_name,
                limit=limit,
            )
            async with response:
                page = [to_recorded(event) async for event in response]
                await _ended_completely(response, "$all")
                return page

    async def subscribe_stream(
        self, stream: str, *, after_version: int | None = None
    ) -> AsyncGenerator[RecordedEvent, None]:
        """Catch-up subscription: events after `after_version` (exclusive; None: all), then live."""
        client = self._live()
        revision = after_version - 1 if after_version is not None and after_version >= 1 else None
        with translated(stream):
            subscription = await client.subscribe_to_stream(stream, stream_position=revision)
        async for event in _catch_up(subscription, stream, None):
            yield event

    async def subscribe_all(
        self, *, after_position: int | None = None, filter: EventFilter | None = None
    ) -> AsyncGenerator[RecordedEvent, None]:
        """Catch-up subscription to the global log after `after_position` (exclusive), then live."""
        client = self._live()
        event_filter = filter or EventFilter()
        narrowed = server_filter(event_filter)
        with translated():
            subscription = await client.subscribe_to_all(
                commit_position=after_position or None,
                filter_include=narrowed.filter_include,
                filter_exclude=narrowed.filter_exclude,
                filter_by_stream_name=narrowed.filter_by_stream_name,
            )
        async for event in _catch_up(subscription, "$all", event_filter):
            yield event

    @bounded
    async def head_position(self) -> int:
        """The position of the last event in the global log, system events included (0: none)."""
        client = self._live()
        with translated():
            # Not esdbclient's get_commit_position: it answers 0 when its read is cancelled.
            response = await client.read_all(backwards=True, filter_exclude=(), limit=1)
            async with response:
                last = [event async for event in response]
                await _ended_completely(response, "$all")
        position = last[0].commit_position if last else None
        return position or 0

    @bounded
    async def delete_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Soft delete: the stream reads as missing; appending again resumes its numbering."""
        client = self._live()
        with translated(stream):
            try:
                await client.delete_stream(stream, current_version=to_esdb_expected(expected))
            except (NotFound, WrongCurrentVersion) as error:
                raise await self._delete_conflict(stream, expected, error) from error

    @bounded
    async def tombstone_stream(self, stream: str, expected: ExpectedVersion = ANY) -> None:
        """Hard delete: the stream can never be read or written again."""
        client = self._live()
        with translated(stream):
            try:
                await client.tombstone_stream(stream, current_version=to_esdb_expected(expected))
            except (NotFound, WrongCurrentVersion) as error:
                raise await self._delete_conflict(stream, expected, error) from error

    async def _delete_conflict(
        self, stream: str, expected: ExpectedVersion, error: EventStoreDBClientException
    ) -> WrongExpectedVersion:
        if isinstance(error, NotFound):  # esdbclient's reading of "Actual version: -1"
            return WrongExpectedVersion(stream, expected, None)
        match = _ACTUAL_VERSION.search(str(error))
        if match is not None:
            revision = int(match.group(1))
            return WrongExpectedVersion(stream, expected, revision + 1 if revision >= 0 else None)
        version = (await self._last(stream))[0]
        return WrongExpectedVersion(stream, expected, version or None)

    @bounded
    async def get_stream_metadata(self, stream: str) -> dict[str, object]:
        """The stream's metadata (`$maxCount`, `$tb`, ...), {} when none was set."""
        client = self._live()
        with translated(stream):
            metadata, _ = await client.get_stream_metadata(stream)
        return dict(metadata) if isinstance(metadata, dict) else {}

    @bounded
    async def set_stream_metadata(
        self, stream: str, metadata: dict[str, object], expected: ExpectedVersion = ANY
    ) -> None:
        """Replace the stream's metadata; `expected` is about the metadata stream `$$<stream>`."""
        client = self._live()
        metadata_stream = f"$${stream}"
        event = NewEvent(id=uuid.uuid4(), type="$metadata", data=orjson.dumps(metadata))
        with translated(stream):
            try:
                await client.append_batch(
                    metadata_stream,
                    current_version=to_esdb_expected(expected),
                    events=[to_esdb_event(event)],
                )
            except CurrentRevisionMismatch as error:
                actual = None if error.current_revision is None else error.current_revision + 1
                raise WrongExpectedVersion(metadata_stream, expected, actual) from error

    # -- persistent subscriptions ---------------------------------------------------------------

    @property
    def groups(self) -> EsdbGroups:
        """The server's persistent-subscription groups."""
        return self._groups


async def _ended_completely(response: AsyncReadResponse, stream: str) -> None:
    """Raise unless the read's call ended because the server sent everything.

    esdbclient ends an iteration quietly when the call is cancelled, and its reconnect (after
    any call saw the server go) cancels every call in flight: such a read would pass a prefix of
    the stream off as all of it. Only a call that finished with OK delivered the whole answer.
    """
    reraise_if_cancelling()
    code = await response.aio_call.code()
    if code != grpc.StatusCode.OK:
        raise StoreUnavailable(f"the read of {stream} ended early ({code.name}): retry")


async def _catch_up(
    subscription: AbstractAsyncCatchupSubscription,
    stream: str,
    event_filter: EventFilter | None,
) -> AsyncGenerator[RecordedEvent, None]:
    """Deliveries of an esdbclient catch-up subscription, stopped when the consumer closes us."""
    try:
        while True:
            try:
                delivery: EsdbRecordedEvent = await subscription.__anext__()
            except StopAsyncIteration:
                reraise_if_cancelling()
                raise SubscriptionDropped(
                    f"the server ended the subscription to {stream}"
                ) from None
            except StreamIsDeleted as error:
                raise StreamDeleted(stream) from error
            except EventStoreDBClientException as error:
                raise SubscriptionDropped(f"subscription to {stream}: {error!r}") from error
            event = to_recorded(delivery)
            if event_filter is None or event_filter.matches(event):
                yield event
    finally:
        await subscription.stop()
