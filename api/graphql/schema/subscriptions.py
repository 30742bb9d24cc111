"""Live event feeds: gap-free history, then live, over the store's catch-up subscriptions."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

import strawberry
from strawberry.types import Info

from api.graphql.context import AppContext
from api.graphql.permissions import IsStaff, OwnsExistingOrder
from api.graphql.schema.arguments import (
    AfterPosition,
    EventTypes,
    FromVersion,
    OrderIdArgument,
    cursor,
    given,
    non_negative,
    order_id_argument,
)
from api.graphql.schema.event_log import order_events_filter
from api.graphql.schema.types import Event
from application.codec import decode_record
from domain.events import order_stream
from eventstore.port import RecordedEvent


async def _events_of(records: AsyncIterator[RecordedEvent]) -> AsyncGenerator[Event, None]:
    try:
        async for record in records:
            yield Event.of(decode_record(record))
    finally:
        # Closing the store's subscription promptly when the client goes: it holds a waiter.
        aclose = getattr(records, "aclose", None)
        if aclose is not None:
            await aclose()


@strawberry.type
class EventLogSubscription:
    """Live feeds of the event log."""

    @strawberry.subscription(  # type: ignore[untyped-decorator]
        description="Gap-free: events with version > fromVersion from history, then live.",
        permission_classes=[OwnsExistingOrder],
    )
    async def order_events(
        self,
        info: Info[AppContext, None],
        id: OrderIdArgument,
        from_version: FromVersion = 0,
    ) -> AsyncGenerator[Event, None]:
        """One order's events, history then live."""
        stream = order_stream(order_id_argument(id))
        after = non_negative(from_version, "fromVersion")
        records = info.context.store.subscribe_stream(stream, after_version=after or None)
        async with aclosing(_events_of(records)) as events:
            async for event in events:
                yield event

    @strawberry.subscription(  # type: ignore[untyped-decorator]
        description=(
            "Gap-free: global order events after the cursor from history, then live; "
            "resumable with the last position seen."
        ),
        permission_classes=[IsStaff],
    )
    async def events(
        self,
        info: Info[AppContext, None],
        after: AfterPosition = strawberry.UNSET,
        types: EventTypes = strawberry.UNSET,
    ) -> AsyncGenerator[Event, None]:
        """The global log of order events, history then live."""
        records = info.context.store.subscribe_all(
            after_position=cursor(after), filter=order_events_filter(given(types))
        )
        async with aclosing(_events_of(records)) as events:
            async for event in events:
                yield event
