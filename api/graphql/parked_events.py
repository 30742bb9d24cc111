"""Parked events as operators see them: which group a projection consumes, and why an event was
parked when the store says. Shared by `orders parked` (`api.wiring.parked_cli`) and the
`projections` query's `parkedEvents` (`api.graphql.schema.parked`)."""

from __future__ import annotations

from typing import cast

import orjson

from eventstore.port import EventStore, RecordedEvent, SubscriptionGroups
from projections.runner import RunnerSettings

_PROJECTOR = RunnerSettings()

PROJECTION_GROUPS = {_PROJECTOR.name: _PROJECTOR.group}
"""The persistent-subscription group each projection consumes, by projection name."""


def parked_reason(event: RecordedEvent) -> str | None:
    """Why the event was parked, when the store recorded it: EventStoreDB writes `reason` into
    the metadata of the link it parks; the SQL stores keep no reason (None)."""
    link = event.link
    if link is None:
        return None
    try:
        metadata = orjson.loads(link.metadata)
    except orjson.JSONDecodeError:
        return None
    reason = metadata.get("reason") if isinstance(metadata, dict) else None
    return reason.strip() or None if isinstance(reason, str) else None


def groups_of(store: EventStore) -> SubscriptionGroups:
    """The persistent-subscription groups of `store` (every adapter here has them)."""
    return cast(SubscriptionGroups, getattr(store, "groups"))  # noqa: B009
