"""What every consumer of a persistent-subscription group does the same way: make sure the group
exists, and read its subscription into a queue whose last item says how it ended."""

from __future__ import annotations

import asyncio

from eventstore.port import (
    EventStoreError,
    PersistentSubscription,
    SubscriptionGroupExists,
    SubscriptionGroupNotFound,
    SubscriptionGroups,
    SubscriptionSettings,
)


async def ensure_group(
    groups: SubscriptionGroups, group: str, settings: SubscriptionSettings
) -> bool:
    """Create the $all group `group` unless it exists; whether this call created it (another
    worker creating it at the same moment counts as existing)."""
    try:
        await groups.get_subscription_info(group)
        return False
    except SubscriptionGroupNotFound:
        try:
            await groups.create_subscription(group, settings=settings)
        except SubscriptionGroupExists:
            return False
        return True


async def pump(subscription: PersistentSubscription, queue: asyncio.Queue[object]) -> None:
    """Put every delivered event on `queue`, then the exception that ended the subscription:
    an end is the consumer's to handle, never a quiet one (a subscription that simply stops is
    an `EventStoreError` too)."""
    try:
        async for event in subscription:
            queue.put_nowait(event)
        queue.put_nowait(EventStoreError("the subscription ended"))
    except Exception as error:
        queue.put_nowait(error)
