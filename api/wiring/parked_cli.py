"""`orders parked list <group>` and `orders parked replay <group>`: the events a persistent-
subscription group parked (handed back too often, or refused at once), and their redelivery.

On EventStoreDB and PostgreSQL both work from any process beside the running consumers: the
store keeps the parked events and delivers a replay to the group's consumers wherever they run.
The embedded store runs its groups inside the serving process: `list` reads its file beside
it, while `replay` needs the groups themselves, so it runs when no process serves DATA_DIR, and
then consumes the replayed events with a projector of its own until they are handled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from api.graphql.parked_events import PROJECTION_GROUPS, groups_of, parked_reason
from api.settings.config import Settings
from eventstore.embedded.lock import DataDirLock, DataDirLocked
from eventstore.embedded.schema import DB_FILE_NAME
from eventstore.persistent.groups import PersistentGroups
from eventstore.port import (
    RecordedEvent,
    StoreUnavailable,
    SubscriptionGroupNotFound,
    SubscriptionGroups,
)

LIST_LIMIT = 100
"""The parked events `orders parked list` prints unless `--limit` says otherwise."""
if TYPE_CHECKING:
    from eventstore.embedded import SQLiteEventStore

OFFLINE_REPLAY_TIMEOUT = 60.0
"""Seconds an offline replay (embedded store) waits for its projector to handle the events."""


def add_parked_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`orders parked list|replay <group> [--stream S]` on the `orders` command line."""
    parked = commands.add_parser(
        "parked", help="list or replay the events a persistent-subscription group parked"
    )
    actions = parked.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="print the group's parked events, oldest first")
    replay = actions.add_parser("replay", help="redeliver the parked events ahead of new ones")
    for action in (listing, replay):
        action.add_argument(
            "group", help="the group, e.g. orders-view (the orders projection) or kafka-relay"
        )
        action.add_argument(
            "--stream", default=None, help="the group's stream, for a group on one stream"
        )
    listing.add_argument(
        "--limit", type=int, default=LIST_LIMIT, help=f"events to print (default {LIST_LIMIT})"
    )


async def run_parked(settings: Settings, args: argparse.Namespace) -> int:
    """Run `orders parked <action>`: 0 done, 1 the store failed, 2 a usage error."""
    name = f"orders parked {args.action}"
    if args.action == "list" and args.limit < 1:
        sys.stderr.write(f"{name}: --limit must be at least 1\n")
        return 2
    if settings.store_kind == "embedded" and not (settings.data_dir / DB_FILE_NAME).exists():
        sys.stderr.write(f"{name}: no event store in {settings.data_dir} (check DATA_DIR)\n")
        return 2
    try:
        if settings.store_kind == "embedded" and args.action == "replay":
            return await _replay_embedded(settings, args.group, args.stream)
        async with _groups(settings) as groups:
            if args.action == "list":
                return await _list(groups, args.group, args.stream, args.limit, sys.stdout)
            count = (await groups.get_subscription_info(args.group, stream=args.stream)).parked
            await groups.replay_parked(args.group, stream=args.stream)
    except SubscriptionGroupNotFound:
        sys.stderr.write(
            f"{name}: no persistent-subscription group {args.group!r} on "
            f"{args.stream or '$all'} (this service's: {', '.join(_known_groups())})\n"
        )
        return 2
    except (StoreUnavailable, OSError) as error:
        sys.stderr.write(f"{name}: the event store is unavailable: {error}\n")
        return 1
    sys.stdout.write(f"{args.group}: replaying {_events(count)}, ahead of new events\n")
    return 0


async def _list(
    groups: SubscriptionGroups, group: str, stream: str | None, limit: int, out: TextIO
) -> int:
    info = await groups.get_subscription_info(group, stream=stream)
    events = await groups.list_parked(group, stream=stream, limit=limit)
    out.write(format_parked(events))
    shown = f" ({len(events)} shown; --limit for more)" if len(events) < info.parked else ""
    out.write(f"{group}: {_events(info.parked)}{shown}\n")
    return 0


def format_parked(events: Sequence[RecordedEvent]) -> str:
    """One line per parked event, in columns: stream, version, position, type, and the reason
    when the store recorded one. Empty for no events."""
    if not events:
        return ""
    rows = [("STREAM", "VERSION", "POSITION", "TYPE", "REASON")]
    rows += [
        (e.stream, str(e.version), str(e.position), e.type, parked_reason(e) or "-") for e in events
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = []
    for stream, version, position, kind, reason in rows:
        lines.append(
            f"{stream:<{widths[0]}}  {version:>{widths[1]}}  {position:>{widths[2]}}  "
            f"{kind:<{widths[3]}}  {reason}"
        )
    return "\n".join(lines) + "\n"


def _events(count: int) -> str:
    return f"{count} parked event" + ("" if count == 1 else "s")


def _known_groups() -> tuple[str, ...]:
    from relay.worker import GROUP as RELAY_GROUP  # the relay's Kafka client loads only here

    return (*PROJECTION_GROUPS.values(), RELAY_GROUP)


@contextlib.asynccontextmanager
async def _groups(settings: Settings) -> AsyncIterator[SubscriptionGroups]:
    """The store's groups. The embedded store's are read from its file beside the serving
    process, without its lock (nothing but reads goes through them)."""
    if settings.store_kind != "embedded":
        from api.wiring.bootstrap import open_store

        store = await open_store(settings)
        try:
            yield store.groups
        finally:
            await store.close()
        return
    from eventstore.embedded import SQLiteEventStore
    from eventstore.embedded.persistent import EmbeddedPersistentSubscriptions

    reader = await SQLiteEventStore.open(settings.data_dir, read_only=True)
    groups = EmbeddedPersistentSubscriptions(reader, reader.path)
    try:
        await groups.start()
        yield groups
    finally:
        await groups.close()
        await reader.close()


async def _replay_embedded(settings: Settings, group: str, stream: str | None) -> int:
    """Replay on the embedded store: only where no process serves DATA_DIR, and only a
    projection's group, whose projector runs here until the replayed events are handled."""
    try:
        DataDirLock.acquire(settings.data_dir).release()
    except DataDirLocked as error:
        sys.stderr.write(
            f"orders parked replay: the embedded event store runs its groups inside the serving "
            f"process ({error}), so only it can redeliver; stop it and run this again, or use "
            "EventStoreDB (ESDB_URL) or PostgreSQL (DATABASE_URL), where replays work beside "
            "running consumers\n"
        )
        return 2
    if group not in PROJECTION_GROUPS.values() or stream is not None:
        sys.stderr.write(
            f"orders parked replay: on the embedded store only a projection's group is replayed "
            f"here ({', '.join(PROJECTION_GROUPS.values())}); {group!r} is consumed inside "
            "`orders serve`\n"
        )
        return 2
    from eventstore.embedded import SQLiteEventStore

    store = await SQLiteEventStore.open(settings.data_dir)
    try:
        count, left = await _replay_through_projector(settings, store, group)
    except TimeoutError:
        sys.stderr.write(
            f"orders parked replay: the projector did not handle the replayed events within "
            f"{OFFLINE_REPLAY_TIMEOUT:g} s; what it did not handle is parked again\n"
        )
        return 1
    finally:
        await store.close()
    sys.stdout.write(f"{group}: replayed {_events(count)}; {_events(left)} now\n")
    return 0


async def _replay_through_projector(
    settings: Settings, store: SQLiteEventStore, group: str
) -> tuple[int, int]:
    """Run a projector on `store`, replay the group's parked events and wait until none of them
    is waiting or in flight: (the events replayed, the events parked afterwards)."""
    from projections.redis_store import RedisViewStore
    from projections.runner import ProjectorRunner
    from projections.service import open_redis

    groups = groups_of(store)
    assert isinstance(groups, PersistentGroups)  # the embedded store runs the shared engine
    count = (await groups.get_subscription_info(group)).parked
    async with open_redis(settings.redis_url, settings.data_dir) as redis:
        runner = ProjectorRunner(store, RedisViewStore(redis))
        stop = asyncio.Event()
        running = asyncio.create_task(runner.run(stop))
        try:
            async with asyncio.timeout(OFFLINE_REPLAY_TIMEOUT):
                await _until(lambda: _consumed_by(groups, group))
                await groups.replay_parked(group)
                await _until(lambda: _settled(groups, group))
        finally:
            stop.set()
            await running
    return count, (await groups.get_subscription_info(group)).parked


def _consumed_by(groups: PersistentGroups, group: str) -> bool:
    runtime = groups.running(group, None)
    return runtime is not None and bool(runtime.consumers)


def _settled(groups: PersistentGroups, group: str) -> bool:
    """Nothing replayed waits for a consumer, nothing is in flight."""
    runtime = groups.running(group, None)
    return runtime is None or (runtime.buffered[0] == 0 and runtime.in_flight == 0)


async def _until(done: Callable[[], bool]) -> None:
    # Polled: the engine signals none of these states, and a replay is a rare operator action.
    while True:
        if done():
            return
        await asyncio.sleep(0.05)
