"""Queries of the event log: time travel, one order's events, the global log of order events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.context import AppContext
from api.graphql.permissions import IsStaff, OwnsOrder, ensure_owner
from api.graphql.schema.arguments import (
    AfterPosition,
    EventPageSize,
    EventTypes,
    FromVersion,
    OrderIdArgument,
    cursor,
    given,
    non_negative,
    order_id_argument,
    page_size,
)
from api.graphql.schema.types import Event, EventConnection, EventEdge, OrderStateGQL, PageInfo
from application.codec import DecodedEvent, decode_record
from domain.events import ORDER_STREAM_PREFIX
from eventstore.port import EventFilter, EventStore

SCAN_PAGE = 500
"""Events read per round trip while a time filter skips events."""

MAX_SCAN = 20_000
"""Events one `events` query examines at most: a narrow time window over a long log answers with
fewer edges, `hasNextPage` and an `endCursor` to continue from, instead of reading everything."""


def order_events_filter(types: list[str] | None) -> EventFilter:
    """The global log restricted to order streams (and to `types`, when given)."""
    return EventFilter(event_types=tuple(types or ()), stream_prefixes=(ORDER_STREAM_PREFIX,))


async def read_event_page(
    store: EventStore,
    *,
    after: int | None,
    first: int,
    types: list[str] | None,
    since: datetime | None,
    until: datetime | None,
) -> EventConnection:
    """One page of the global log of order events after the position `after`."""
    event_filter = order_events_filter(types)
    timed = since is not None or until is not None
    matched: list[DecodedEvent] = []
    next_position = None if after is None else after + 1
    scanned = 0
    last_scanned: int | None = None
    budget_hit = False
    page_limit = SCAN_PAGE if timed else first + 1
    while len(matched) <= first:
        records = await store.read_all(
            from_position=next_position, limit=page_limit, filter=event_filter
        )
        for record in records:
            decoded = decode_record(record)
            last_scanned = record.position
            moment = decoded.occurred_at
            if (since is None or moment >= since) and (until is None or moment <= until):
                matched.append(decoded)
                if len(matched) > first:
                    break
        if len(records) < page_limit:
            break
        next_position = records[-1].position + 1
        scanned += len(records)
        if scanned >= MAX_SCAN and len(matched) <= first:
            budget_hit = True
            break
    edges = [EventEdge(cursor=str(d.record.position), node=Event.of(d)) for d in matched[:first]]
    if budget_hit:
        end_cursor = None if last_scanned is None else str(last_scanned)
    else:
        end_cursor = edges[-1].cursor if edges else None
    return EventConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=budget_hit or len(matched) > first,
            has_previous_page=after is not None and await _logged_by(store, event_filter, after),
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=end_cursor,
        ),
    )


async def _logged_by(store: EventStore, event_filter: EventFilter, position: int) -> bool:
    """Whether the log holds an event the filter selects at or before `position`: one read of
    one event (the time window aside, which would need a scan)."""
    first = await store.read_all(from_position=None, limit=1, filter=event_filter)
    return bool(first) and first[0].position <= position


@strawberry.type
class EventLogQuery:
    """Reads of the event log (the write side's truth)."""

    @strawberry.field(  # type: ignore[untyped-decorator]
        description=(
            "Time travel: the state as of a moment, or at a version. "
            "Null if the order did not exist then."
        ),
        permission_classes=[OwnsOrder],
    )
    async def order_at(
        self,
        info: Info[AppContext, None],
        id: OrderIdArgument,
        as_of: Annotated[
            datetime | None,
            strawberry.argument(description="Fold the events that occurred up to this moment."),
        ] = strawberry.UNSET,
        version: Annotated[
            int | None, strawberry.argument(description="Fold the events up to this version.")
        ] = strawberry.UNSET,
    ) -> OrderStateGQL | None:
        """The order's state at a moment or a version."""
        order_id = order_id_argument(id)
        moment = given(as_of)
        loaded = await info.context.repository.state_at(
            order_id, version=given(version), as_of=moment
        )
        if loaded is None or loaded.state is None:
            return None
        ensure_owner(info.context.principal, loaded.state.customer_id)
        return OrderStateGQL.of(loaded.state, version=loaded.version, as_of=moment)

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="The order's events with version > fromVersion, oldest first.",
        permission_classes=[OwnsOrder],
    )
    async def order_events(
        self,
        info: Info[AppContext, None],
        id: OrderIdArgument,
        from_version: FromVersion = 0,
        first: EventPageSize = 100,
    ) -> list[Event]:
        """The order's events with version > fromVersion."""
        order_id = order_id_argument(id)
        history = await info.context.repository.history(
            order_id,
            from_version=non_negative(from_version, "fromVersion"),
            limit=page_size(first),
        )
        principal = info.context.principal
        if history and (principal is None or not principal.is_staff):
            # Placed by someone after the permission saw no such order: the read says whose.
            ensure_owner(principal, await info.context.repository.customer_of(order_id))
        return [Event.of(decoded) for decoded in history]

    @strawberry.field(  # type: ignore[untyped-decorator]
        description=(
            "The global log of order events, oldest first. Its cursors are event positions, "
            "so `after` also takes any Event.position."
        ),
        permission_classes=[IsStaff],
    )
    async def events(
        self,
        info: Info[AppContext, None],
        after: AfterPosition = strawberry.UNSET,
        first: EventPageSize = 100,
        types: EventTypes = strawberry.UNSET,
        since: Annotated[
            datetime | None, strawberry.argument(description="Only events that occurred since.")
        ] = strawberry.UNSET,
        until: Annotated[
            datetime | None, strawberry.argument(description="Only events that occurred until.")
        ] = strawberry.UNSET,
    ) -> EventConnection:
        """A page of the global log of order events."""
        return await read_event_page(
            info.context.store,
            after=cursor(after),
            first=page_size(first),
            types=given(types),
            since=given(since),
            until=given(until),
        )
