"""Parked events in the `projections` query: what a projection's group handed back too often or
refused at once, for staff to see before replaying it (`orders parked replay <group>`)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.graphql.parked_events import groups_of, parked_reason
from api.graphql.schema.errors import BadUserInput
from eventstore.port import EventStore, RecordedEvent, SubscriptionGroupNotFound

PARKED_PAGE = 20
"""The parked events `parkedEvents` lists when `first` is not given."""
MAX_PARKED_PAGE = 100
"""The most `parkedEvents` lists at once."""


@strawberry.type(
    name="ParkedEvent",
    description="An event a projection's group parked: it will not be delivered again until "
    "replayed. Raw: it may be one no code of this version can decode.",
)
class ParkedEventGQL:
    """An event a projection's group parked."""

    id: strawberry.ID = strawberry.field(description="The event's UUID.")
    stream_id: str = strawberry.field(description="The stream it belongs to: order-{orderId}.")
    type: str = strawberry.field(description="The event type, e.g. PaymentTaken.")
    version: int = strawberry.field(description="The order's version after this event.")
    position: str = strawberry.field(
        description="Its commit position in the global log ($all), as a decimal string."
    )
    recorded_at: datetime = strawberry.field(description="When the event store recorded it.")
    reason: str | None = strawberry.field(
        description="Why it was parked, when the event store recorded it (EventStoreDB does)."
    )

    @classmethod
    def of(cls, event: RecordedEvent) -> ParkedEventGQL:
        """The GraphQL view of a parked event."""
        return cls(
            id=strawberry.ID(str(event.id)),
            stream_id=event.stream,
            type=event.type,
            version=event.version,
            position=str(event.position),
            recorded_at=event.recorded_at,
            reason=parked_reason(event),
        )


def parked_page_size(first: int | None) -> int:
    """`first` of `parkedEvents`, 0..MAX_PARKED_PAGE (null: PARKED_PAGE)."""
    if first is None:
        return PARKED_PAGE
    if not 0 <= first <= MAX_PARKED_PAGE:
        raise BadUserInput(f"first must be between 0 and {MAX_PARKED_PAGE}", "first")
    return first


async def parked_events(store: EventStore, group: str | None, first: int) -> list[ParkedEventGQL]:
    """The group's parked events, oldest first: none for a projection without a group, or
    whose group its workers have not created yet."""
    if group is None or first == 0:
        return []
    try:
        events = await groups_of(store).list_parked(group, limit=first)
    except SubscriptionGroupNotFound:
        return []
    return [ParkedEventGQL.of(event) for event in events]
