"""Snapshots over both stores: newest only, invisible to readers of order events, never trusted
when stale, never failing a command, and never changing a result."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from api.graphql.schema.event_log import read_event_page
from application.codec import ORDER_EVENTS
from application.handler import CommandHandler
from application.repository import FIRST_PAGE, OrderRepository
from application.snapshot_policy import SnapshotPolicy
from application.snapshot_shape import STATE_SHAPE_VERSION, Snapshot, snapshot_to_dict
from application.snapshot_store import SNAPSHOT_EVENT_TYPE, SnapshotStore, snapshot_stream
from application.snapshot_taker import Snapshotter
from domain.commands import AddItem, PlaceOrder, RemoveItem
from domain.events import LineItem
from eventstore.port import ANY, MARKED_VERSION, EventStore, NewEvent, StoreUnavailable

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def line(n: int) -> LineItem:
    return LineItem(product_id=f"p{n}", name=f"Thing {n}", price=Decimal("1.25"), qty=n % 3 + 1)


async def amended_order(handler: CommandHandler, events: int) -> str:
    """An order placed and then amended (add, remove, add, ...) to `events` events."""
    order_id = f"long-{uuid.uuid4().hex[:10]}"
    commands: list[Any] = [PlaceOrder(order_id=order_id, customer_id="c", items=(line(0),))]
    for n in range(1, events):
        if n % 2:
            commands.append(AddItem(order_id=order_id, item=line(n)))
        else:
            commands.append(RemoveItem(order_id=order_id, product_id=f"p{n - 1}"))
    for command in commands:
        await handler.handle(command, expected_version=None, actor="t", correlation_id="c")
    return order_id


def wiring(
    store: EventStore, every: int, snapshots: SnapshotStore | None = None
) -> tuple[OrderRepository, Snapshotter, CommandHandler]:
    snapshots = snapshots or SnapshotStore(store)
    repository = OrderRepository(store, snapshots)
    snapshotter = Snapshotter(repository, snapshots, SnapshotPolicy(every=every))
    handler = CommandHandler(store, repository, clock=lambda: NOW, snapshotter=snapshotter)
    return repository, snapshotter, handler


async def test_commands_take_snapshots_and_only_the_newest_is_kept(store: EventStore) -> None:
    repository, snapshotter, handler = wiring(store, every=5)
    order_id = await amended_order(handler, 23)
    await snapshotter.drain()

    kept = await store.read_stream(snapshot_stream(order_id))
    assert len(kept) == 1  # $maxCount = 1, honoured on reads
    assert kept[0].type == SNAPSHOT_EVENT_TYPE
    assert (await store.get_stream_metadata(snapshot_stream(order_id)))["$maxCount"] == 1
    snapshot = await SnapshotStore(store).load(order_id)
    assert snapshot is not None
    assert snapshot.version in range(19, 24)
    loaded = await repository.load(order_id)
    assert loaded.version == 23
    assert loaded.snapshot_version == snapshot.version


class SlowSnapshots(SnapshotStore):
    """The real snapshot store, each write taking longer than many commands."""

    async def save(self, snapshot: Snapshot) -> bool:
        await asyncio.sleep(0.05)
        return await super().save(snapshot)


async def test_a_snapshot_due_while_one_is_in_flight_is_taken_after_it(store: EventStore) -> None:
    repository, snapshotter, handler = wiring(store, every=5, snapshots=SlowSnapshots(store))
    order_id = await amended_order(handler, 23)  # faster than the first snapshot is written
    await snapshotter.drain()
    snapshot = await SnapshotStore(store).load(order_id)
    assert snapshot is not None
    # Due at most every 5 events, each due one taken: within 4 of the head (23), not left at the
    # first one (5-6) as when a snapshot due while another was in flight was dropped.
    assert snapshot.version >= 19
    assert (await repository.load(order_id)).snapshot_version == snapshot.version


async def test_order_event_readers_never_see_snapshot_streams(store: EventStore) -> None:
    before = await store.head_position()
    _, snapshotter, handler = wiring(store, every=2)
    order_id = await amended_order(handler, 4)
    await snapshotter.drain()
    assert await store.read_stream(snapshot_stream(order_id))

    page = await read_event_page(store, after=before, first=100, types=None, since=None, until=None)
    projected = await store.read_all(from_position=before + 1, filter=ORDER_EVENTS)
    assert {edge.node.stream_id for edge in page.edges} == {f"order-{order_id}"}
    assert {record.stream for record in projected} == {f"order-{order_id}"}


async def test_deleting_every_snapshot_changes_no_result(store: EventStore) -> None:
    repository, snapshotter, handler = wiring(store, every=4)
    order_id = await amended_order(handler, 18)
    await snapshotter.drain()
    plain = OrderRepository(store)

    async def results(repo: OrderRepository) -> tuple[Any, list[Any]]:
        loaded = await repo.load(order_id)
        at = [await repo.state_at(order_id, version=v) for v in range(20)]
        # Everything but `snapshot_version`, which says where the fold started, not its result.
        return loaded.state, [None if a is None else (a.state, a.version) for a in at]

    with_snapshots = await results(repository)
    assert (await repository.load(order_id)).snapshot_version > 0
    await SnapshotStore(store).delete(order_id)
    assert (await repository.load(order_id)).snapshot_version == 0

    without = await results(repository)
    assert without == with_snapshots
    assert await results(plain) == with_snapshots


async def write_snapshot_event(store: EventStore, order_id: str, stored: dict[str, Any]) -> None:
    event = NewEvent(id=uuid.uuid4(), type=SNAPSHOT_EVENT_TYPE, data=orjson.dumps(stored))
    await store.append(snapshot_stream(order_id), [event], ANY)


async def test_a_stale_shape_snapshot_is_ignored_and_replaced(store: EventStore) -> None:
    repository, snapshotter, handler = wiring(store, every=3)
    order_id = await amended_order(handler, 2)
    truth = await repository.snapshot(order_id)
    assert truth is not None
    # Older code's snapshot: a different shape version, and a state today's fold would not give.
    lying = snapshot_to_dict(truth) | {"shapeVersion": STATE_SHAPE_VERSION - 1}
    lying["state"] = {**lying["state"], "total": "999.00"}
    await write_snapshot_event(store, order_id, lying)

    loaded = await repository.load(order_id)
    assert loaded.snapshot_version == 0
    assert loaded.state == truth.state

    await handler.handle(
        AddItem(order_id=order_id, item=line(7)),
        expected_version=None,
        actor="t",
        correlation_id="c",
    )
    await snapshotter.drain()
    replaced = await SnapshotStore(store).load(order_id)
    assert replaced is not None
    assert replaced.version == 3
    assert (await repository.load(order_id)).snapshot_version == 3


async def test_a_snapshot_not_matching_its_stream_is_not_trusted(store: EventStore) -> None:
    repository, _, handler = wiring(store, every=100)
    order_id = await amended_order(handler, 3)
    truth = await repository.load(order_id)
    assert truth.state is not None
    forged = Snapshot(
        state=truth.state.__class__(**{**_fields(truth.state), "total": Decimal("1.00")}),
        version=truth.version,
        last_event_id=str(uuid.uuid4()),
        max_occurred_at=NOW,
    )
    await write_snapshot_event(store, order_id, snapshot_to_dict(forged))

    loaded = await repository.load(order_id)

    assert loaded == truth


def _fields(state: Any) -> dict[str, Any]:
    return {name: getattr(state, name) for name in state.__slots__}


class BrokenSnapshots(SnapshotStore):
    """A snapshot store whose writes fail, as an unreachable store's would."""

    async def save(self, snapshot: Snapshot) -> bool:
        raise StoreUnavailable("snapshot store down")


async def test_a_failed_snapshot_never_fails_a_command(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="application.snapshot_taker")
    repository, snapshotter, handler = wiring(store, every=2, snapshots=BrokenSnapshots(store))

    order_id = await amended_order(handler, 5)
    await snapshotter.drain()

    assert (await repository.load(order_id)).version == 5
    assert any("snapshot_failed" in r.getMessage() for r in caplog.records)


async def test_a_tail_longer_than_the_first_read_is_folded_to_the_end(store: EventStore) -> None:
    # The snapshot and the first events after it come in one read; a tail longer than that read
    # (a policy of 150 events, or no snapshot yet) continues page by page.
    repository, snapshotter, handler = wiring(store, every=150)
    order_id = await amended_order(handler, 299)
    await snapshotter.drain()
    snapshot = await SnapshotStore(store).load(order_id)
    assert snapshot is not None
    loaded = await repository.load(order_id)
    assert loaded.version == 299
    assert loaded.snapshot_version == snapshot.version
    assert loaded.version - snapshot.version > FIRST_PAGE
    assert loaded.state == (await OrderRepository(store).load(order_id)).state
    fresh = await amended_order(handler, 120)
    assert (await repository.load(fresh)).version == 120


async def test_a_snapshot_names_the_version_it_covers_in_its_metadata(store: EventStore) -> None:
    # What lets a load read the snapshot and its tail in one read, with no code of ours run
    # by the store.
    repository, snapshotter, handler = wiring(store, every=4)
    order_id = await amended_order(handler, 6)
    await snapshotter.drain()
    [record] = await store.read_stream(snapshot_stream(order_id), backwards=True, limit=1)
    version = orjson.loads(record.data)["version"]
    assert version >= 4
    assert orjson.loads(record.metadata)[MARKED_VERSION] == version
    assert (await repository.load(order_id)).snapshot_version == version


@pytest.mark.parametrize("metadata", [{}, {MARKED_VERSION: 2}, {MARKED_VERSION: 9}])
async def test_a_snapshot_whose_metadata_names_not_its_version_is_still_loaded_from(
    store: EventStore, metadata: dict[str, Any]
) -> None:
    # `{}`: written by code older than the version in the metadata; the load reads the tail
    # itself. A wrong version never makes the fold start from another event than the snapshot's.
    repository, _, handler = wiring(store, every=100)
    order_id = await amended_order(handler, 7)
    snapshot = await repository.snapshot(order_id)
    assert snapshot is not None
    await amended_order_more(handler, order_id)
    event = NewEvent(
        id=uuid.uuid4(),
        type=SNAPSHOT_EVENT_TYPE,
        data=orjson.dumps(snapshot_to_dict(snapshot)),
        metadata=orjson.dumps(metadata),
    )
    await store.append(snapshot_stream(order_id), [event], ANY)

    loaded = await repository.load(order_id)

    truth = await OrderRepository(store).load(order_id)
    assert loaded.snapshot_version == 7
    assert (loaded.state, loaded.version) == (truth.state, 9)


async def amended_order_more(handler: CommandHandler, order_id: str) -> None:
    """Two more events on the order: an item added and removed."""
    for command in (
        AddItem(order_id=order_id, item=line(50)),
        RemoveItem(order_id=order_id, product_id="p50"),
    ):
        await handler.handle(command, expected_version=None, actor="t", correlation_id="c")
