"""The order as a command left it: what `CommandAccepted.order` shows without waiting for the views.

The handler has just decided on the order's state and appended the events, so it knows the new
state exactly: the loaded state with the decided events folded on. The read model's view adds two
moments the domain state does not hold: when the order was placed (its first event's
`occurredAt`) and when it last changed (the command's events' `occurredAt`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from application.codec import DecodedEvent
from application.timestamps import format_timestamp
from domain.events import OrderPlaced
from domain.order import OrderState, evolve


@dataclass(frozen=True, slots=True, kw_only=True)
class WrittenOrder:
    """An order folded at a command's version, with the moments its view will show.

    `placed_at` is None when the handler did not see the order's first event (it decided on a
    state loaded from a snapshot): reading that one event gives it (`OrderRepository.placed`).
    """

    state: OrderState
    placed_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """A command's events are durably appended: the order's new version and the last position.

    `order` is the order as the command left it, folded at `version`. It is None only for a
    placement with an idempotency key: the store may have answered the append with an earlier
    one's result, whose events (and moments) only the stream knows (`OrderRepository.placed`).
    """

    order_id: str
    version: int
    position: int
    event_ids: tuple[uuid.UUID, ...]
    order: WrittenOrder | None = None


def as_stored(moment: datetime) -> datetime:
    """`moment` as an event's metadata stores it and a reader parses it back (UTC, to the
    microsecond), so a written order's moments equal the view's."""
    if moment.tzinfo is UTC:
        return moment  # the handler's clock: already what the round trip gives
    return datetime.fromisoformat(format_timestamp(moment))


def placed_by(decoded: DecodedEvent) -> WrittenOrder | None:
    """The order as its first event placed it (None: the event is not an `OrderPlaced`)."""
    event = decoded.event
    if not isinstance(event, OrderPlaced):
        return None
    moment = decoded.occurred_at
    return WrittenOrder(state=evolve(None, event), placed_at=moment, updated_at=moment)
