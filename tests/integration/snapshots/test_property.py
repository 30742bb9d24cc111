"""Snapshot + tail == the full fold, for random histories and any snapshot point (hypothesis).

Histories are what `decide` accepts from random commands, with events from another service mixed
in, and `occurredAt` stamps that may go backwards (clocks of several writers), which is what makes
time travel from a snapshot subtle.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.codec import EventContext, decode_record, encode
from application.repository import OrderRepository
from application.snapshot_shape import Snapshot
from application.snapshot_store import SnapshotStore
from domain.commands import AddItem, CancelOrder, PlaceOrder, RemoveItem, ShipOrder, TakePayment
from domain.decide import decide
from domain.errors import DomainError
from domain.events import LineItem, order_stream
from domain.order import OrderState, evolve
from domain.validation import validate
from eventstore.embedded import SQLiteEventStore
from eventstore.port import ANY, NewEvent

START = datetime(2024, 1, 1, tzinfo=UTC)
ORDER = "prop-1"

steps = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "pay", "ship", "cancel", "foreign"]),
        st.integers(0, 5),
        st.integers(-30, 90),  # minutes from the previous event: clocks may step back
    ),
    max_size=25,
)


def history(chosen: list[tuple[str, int, int]]) -> list[NewEvent]:
    """The events the steps produce: rejected commands write nothing, like the real handler."""
    state: OrderState | None = None
    moment = START
    first = LineItem(product_id="p0", name="Zero", price=Decimal("1.10"), qty=1)
    place = PlaceOrder(order_id=ORDER, customer_id="c", items=(first,))
    commands: list[tuple[Any, int]] = [(place, 0)]
    for kind, n, minutes in chosen:
        item = LineItem(product_id=f"p{n}", name=f"N{n}", price=Decimal(f"{n}.25"), qty=n + 1)
        command = {
            "add": AddItem(order_id=ORDER, item=item),
            "remove": RemoveItem(order_id=ORDER, product_id=f"p{n}"),
            "pay": TakePayment(
                order_id=ORDER,
                amount=state.total if state else Decimal(0),
                method="m",
                transaction_id="t",
            ),
            "ship": ShipOrder(order_id=ORDER, tracking_id="T", carrier="C"),
            "cancel": CancelOrder(order_id=ORDER, reason="r"),
            "foreign": None,
        }[kind]
        commands.append((command, minutes))
    written: list[NewEvent] = []
    for command, minutes in commands:
        moment += timedelta(minutes=minutes)
        if command is None:
            stamp = {"occurredAt": moment.isoformat()}
            written.append(
                NewEvent(id=uuid.uuid4(), type="Audited", data=b"{}", metadata=orjson.dumps(stamp))
            )
            continue
        try:
            events = decide(state, validate(command))
        except DomainError:
            continue
        context = EventContext(correlation_id="c", causation_id="c", actor="a", occurred_at=moment)
        for event in events:
            state = evolve(state, event)
            written.append(encode(event, context, uuid.uuid4()))
    return written


async def check(events: list[NewEvent], at: int, store_dir: Path) -> None:
    store = await SQLiteEventStore.open(store_dir)
    try:
        await store.append(order_stream(ORDER), events, ANY)
        records = await store.read_stream(order_stream(ORDER))
        plain = OrderRepository(store)
        at = min(at, len(records))
        prefix = await plain.state_at(ORDER, version=at)
        assert prefix is not None
        assert prefix.state is not None
        decoded = [decode_record(r) for r in records[:at]]
        snapshots = SnapshotStore(store)
        await snapshots.save(
            Snapshot(
                state=prefix.state,
                version=at,
                last_event_id=str(records[at - 1].id),
                max_occurred_at=max(d.occurred_at for d in decoded),
            )
        )
        cached = OrderRepository(store, snapshots)

        loaded = await cached.load(ORDER)
        assert loaded.snapshot_version == at
        assert (loaded.state, loaded.version) == ((p := await plain.load(ORDER)).state, p.version)
        for version in range(len(records) + 2):
            want = await plain.state_at(ORDER, version=version)
            got = await cached.state_at(ORDER, version=version)
            assert (got and (got.state, got.version)) == (want and (want.state, want.version))
        moments = sorted({decode_record(r).occurred_at for r in records})
        for moment in [START - timedelta(days=1), *moments]:
            want = await plain.state_at(ORDER, as_of=moment)
            got = await cached.state_at(ORDER, as_of=moment)
            assert (got and (got.state, got.version)) == (want and (want.state, want.version))
    finally:
        await store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chosen=steps, at=st.integers(1, 40))
def test_snapshot_plus_tail_equals_the_full_fold(
    chosen: list[tuple[str, int, int]], at: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(check(history(chosen), at, Path(directory)))
