"""Contract: reading one stream and the global log."""

from __future__ import annotations

import uuid

from eventstore.port import NO_STREAM, EventFilter, EventStore
from tests.contract.conftest import new_events, unique_stream


async def test_a_missing_stream_reads_empty(store: EventStore) -> None:
    stream = unique_stream()
    assert await store.read_stream(stream) == []
    assert await store.read_stream(stream, backwards=True) == []


async def test_stream_reads_forwards_backwards_from_and_limit(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(10), NO_STREAM)

    async def versions(**options: object) -> list[int]:
        return [e.version for e in await store.read_stream(stream, **options)]  # type: ignore[arg-type]

    assert await versions() == list(range(1, 11))
    assert await versions(from_version=4) == list(range(4, 11))
    assert await versions(from_version=4, limit=3) == [4, 5, 6]
    assert await versions(limit=2) == [1, 2]
    assert await versions(backwards=True) == list(range(10, 0, -1))
    assert await versions(backwards=True, limit=3) == [10, 9, 8]
    assert await versions(backwards=True, from_version=4) == [4, 3, 2, 1]
    assert await versions(backwards=True, from_version=4, limit=2) == [4, 3]
    assert await versions(from_version=11) == []


async def test_the_tail_of_a_long_stream_reads_backwards(store: EventStore) -> None:
    stream = unique_stream()
    expected: int | object = NO_STREAM
    for round_ in range(10):
        result = await store.append(stream, new_events(100, start=round_ * 100), expected)  # type: ignore[arg-type]
        expected = result.version
    tail = await store.read_stream(stream, backwards=True, limit=5)
    assert [e.version for e in tail] == [1000, 999, 998, 997, 996]
    assert tail[0].data == b'{"n": 999}'


async def test_read_all_from_a_position_forwards_and_backwards(store: EventStore) -> None:
    prefix = f"readall{uuid.uuid4().hex}"
    first, second = f"{prefix}-a", f"{prefix}-b"
    await store.append(first, new_events(3), NO_STREAM)
    await store.append(second, new_events(3), NO_STREAM)
    mine = EventFilter(stream_prefixes=(prefix,))
    everything = await store.read_all(filter=mine)
    assert [(e.stream, e.version) for e in everything] == [
        (first, 1), (first, 2), (first, 3), (second, 1), (second, 2), (second, 3)
    ]  # fmt: skip
    middle = everything[2].position
    forwards = await store.read_all(from_position=middle, filter=mine)
    assert forwards == everything[2:]
    backwards = await store.read_all(from_position=middle, backwards=True, filter=mine)
    assert backwards == everything[2::-1]
    limited = await store.read_all(from_position=middle, limit=2, filter=mine)
    assert limited == everything[2:4]


async def test_read_all_filters_by_type_and_stream_prefix(store: EventStore) -> None:
    prefix = f"filters{uuid.uuid4().hex}"
    orders, invoices = f"{prefix}order-1", f"{prefix}invoice-1"
    await store.append(orders, new_events(2, "Placed") + new_events(1, "Shipped"), NO_STREAM)
    await store.append(invoices, new_events(2, "Placed"), NO_STREAM)
    start = (await store.read_stream(orders, limit=1))[0].position

    async def pick(selection: EventFilter) -> list[tuple[str, str]]:
        return [
            (e.stream, e.type) for e in await store.read_all(from_position=start, filter=selection)
        ]

    assert await pick(EventFilter(stream_prefixes=(f"{prefix}order",))) == [
        (orders, "Placed"), (orders, "Placed"), (orders, "Shipped")
    ]  # fmt: skip
    assert await pick(EventFilter(stream_prefixes=(prefix,), event_types=("Placed",))) == [
        (orders, "Placed"), (orders, "Placed"), (invoices, "Placed"), (invoices, "Placed")
    ]  # fmt: skip
    assert await pick(
        EventFilter(
            stream_prefixes=(f"{prefix}order", f"{prefix}invoice"), event_types=("Shipped",)
        )
    ) == [(orders, "Shipped")]


async def test_system_events_are_in_the_log_but_filtered_by_default(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, new_events(1), NO_STREAM)
    await store.set_stream_metadata(stream, {"owner": "contract"})
    start = (await store.read_stream(stream))[0].position
    default = await store.read_all(from_position=start)
    assert all(not e.is_system for e in default)
    everything = await store.read_all(
        from_position=start, filter=EventFilter(include_system=True), limit=1000
    )
    metadata = [e for e in everything if e.stream == f"$${stream}"]
    assert [e.type for e in metadata] == ["$metadata"]


async def test_head_position_is_the_newest_event(store: EventStore) -> None:
    result = await store.append(unique_stream(), new_events(2), NO_STREAM)
    head = await store.head_position()
    assert head >= result.position
    [newest] = await store.read_all(
        backwards=True, limit=1, filter=EventFilter(include_system=True)
    )
    assert newest.position == head
