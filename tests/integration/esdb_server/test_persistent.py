"""Persistent subscriptions with the real esdbclient: management errors, acks (and the 24.10 rule
that acks naming another subscription id are ignored), redelivery, parking, replay, info, list."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from esdbclient import AsyncEventStoreDBClient, EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import (
    AlreadyExists,
    InternalError,
    MaximumSubscriptionsReached,
    NotFound,
)


def _events(*types: str) -> list[NewEvent]:
    return [NewEvent(type=t, data=b"{}") for t in types]


async def test_management_errors(aclient: AsyncEventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    await aclient.create_subscription_to_stream("g", stream)
    with pytest.raises(AlreadyExists):
        await aclient.create_subscription_to_stream("g", stream)
    with pytest.raises(NotFound):
        await aclient.get_subscription_info("missing", stream)
    with pytest.raises(NotFound):
        await aclient.delete_subscription("missing", stream)
    with pytest.raises(NotFound):
        await aclient.read_subscription_to_stream("missing", stream)
    with pytest.raises(InternalError):
        await aclient.create_subscription_to_all(
            "bad", read_batch_size=600, history_buffer_size=500
        )
    assert await aclient.list_subscriptions() != []
    assert await aclient.list_subscriptions_to_stream(f"s-{uuid.uuid4()}") == []


async def test_info_update_list_delete(aclient: AsyncEventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    await aclient.create_subscription_to_stream(
        "g", stream, stream_position=3, message_timeout=7.5, max_retry_count=4
    )
    info = await aclient.get_subscription_info("g", stream)
    assert (info.event_source, info.group_name, info.start_from) == (stream, "g", "3")
    assert (info.message_timeout, info.max_retry_count) == (7.5, 4)
    assert info.consumer_strategy == "DispatchToSingle"
    await aclient.update_subscription_to_stream("g", stream, max_retry_count=2)
    info = await aclient.get_subscription_info("g", stream)
    assert (info.start_from, info.max_retry_count, info.message_timeout) == ("3", 2, 7.5)
    await aclient.create_subscription_to_all("all-g", from_end=True, filter_include=["X"])
    all_info = await aclient.get_subscription_info("all-g")
    assert all_info.event_source == "$all"
    assert all_info.start_from == "C:-1/P:-1"
    names = {(i.event_source, i.group_name) for i in await aclient.list_subscriptions()}
    assert {(stream, "g"), ("$all", "all-g")} <= names
    assert [i.group_name for i in await aclient.list_subscriptions_to_stream(stream)] == ["g"]
    await aclient.delete_subscription("g", stream)
    assert await aclient.list_subscriptions_to_stream(stream) == []


def test_sync_acks_are_effective(client: EventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=_events("A", "B"))
    client.create_subscription_to_stream("g", stream, message_timeout=0.5)
    subscription = client.read_subscription_to_stream("g", stream)
    assert subscription.subscription_id == f"{stream}::g"
    seen = []
    for event in subscription:
        seen.append((event.type, event.retry_count))
        subscription.ack(event)
        if len(seen) == 2:
            break
    time.sleep(1.5)  # past the message timeout: acknowledged events must not come back
    info = client.get_subscription_info("g", stream)
    subscription.stop()
    assert seen == [("A", 0), ("B", 0)]
    assert info.total_in_flight_messages == 0


async def test_async_client_acks_are_ignored_and_redelivered(
    aclient: AsyncEventStoreDBClient,
) -> None:
    # esdbclient 1.1.7's asyncio acks carry an empty subscription id: EventStoreDB 24.10 ignores
    # them, so the event comes back after the message timeout with a higher retry count.
    stream = f"s-{uuid.uuid4()}"
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("A")
    )
    await aclient.create_subscription_to_stream("g", stream, message_timeout=0.3)
    subscription = await aclient.read_subscription_to_stream("g", stream)
    assert subscription.subscription_id == f"{stream}::g"
    counts = []
    async with subscription:
        async for event in subscription:
            counts.append(event.retry_count)
            await subscription.ack(event)
            if len(counts) == 3:
                break
    assert counts == [0, 1, 2]


async def test_parking_after_max_retries_and_replay(aclient: AsyncEventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("A")
    )
    await aclient.create_subscription_to_stream("g", stream, max_retry_count=2)
    subscription = await aclient.read_subscription_to_stream("g", stream)
    deliveries = []
    # The asyncio client's nacks are ignored like its acks, so retries come from timeouts; an
    # update drops the connected consumer, which then reconnects.
    async with subscription:
        await aclient.update_subscription_to_stream("g", stream, message_timeout=0.2)
    subscription = await aclient.read_subscription_to_stream("g", stream)
    async with subscription:
        async for event in subscription:
            deliveries.append(event.retry_count)
            if len(deliveries) == 3:
                break
        await asyncio.sleep(0.8)  # the third timeout parks it
        info = await aclient.get_subscription_info("g", stream)
        assert info.parked_message_count == 1
        await aclient.replay_parked_events("g", stream)
        replayed = await asyncio.wait_for(anext(subscription), 5)
    assert deliveries == [0, 1, 2]
    assert replayed.type == "A"
    assert replayed.link is not None
    assert replayed.ack_id == replayed.link.id
    assert replayed.link.stream_name == f"$persistentsubscription-{stream}::g-parked"


def test_sync_nack_park_and_replay(client: EventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=_events("A", "B"))
    client.create_subscription_to_stream("g", stream)
    subscription = client.read_subscription_to_stream("g", stream)
    received = []
    for event in subscription:
        received.append((event.type, event.retry_count, event.link is not None))
        if event.type == "A" and event.link is None:
            subscription.nack(event, action="park")
        elif event.type == "B" and event.retry_count == 0:
            subscription.nack(event, action="retry")
        else:
            subscription.ack(event)
        if len(received) == 3:
            client.replay_parked_events("g", stream)
        if len(received) == 4:
            break
    subscription.stop()
    assert received == [("A", 0, False), ("B", 0, False), ("B", 1, False), ("A", 0, True)]


async def test_all_group_start_inclusive_and_filtered(aclient: AsyncEventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    first = await aclient.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=_events("Keep1")
    )
    await aclient.append_to_stream(stream, current_version=0, events=_events("Skip", "Keep2"))
    await aclient.create_subscription_to_all("g", commit_position=first, filter_include=["Keep.*"])
    subscription = await aclient.read_subscription_to_all("g")
    assert subscription.subscription_id == "$all::g"
    async with subscription:
        got = [(await asyncio.wait_for(anext(subscription), 5)).type for _ in range(2)]
    assert got == ["Keep1", "Keep2"]


async def test_max_subscribers(aclient: AsyncEventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    await aclient.create_subscription_to_stream("g", stream, max_subscriber_count=1)
    first = await aclient.read_subscription_to_stream("g", stream)
    async with first:
        with pytest.raises(MaximumSubscriptionsReached):
            await aclient.read_subscription_to_stream("g", stream)


async def test_async_discovery_connects_to_the_leader(server_url: str) -> None:
    client = AsyncEventStoreDBClient(server_url.replace("esdb://", "esdb+discover://"))
    await client.connect()
    try:
        assert client.connection_target == server_url.removeprefix("esdb://").split("?")[0]
        await client.append_to_stream(
            f"s-{uuid.uuid4()}", current_version=StreamState.NO_STREAM, events=_events("A")
        )
    finally:
        await client.close()


def test_gossip_reports_one_alive_leader(threaded_url: str) -> None:
    target = threaded_url.removeprefix("esdb://").split("?")[0]
    client = EventStoreDBClient(threaded_url.replace("esdb://", "esdb+discover://"))
    try:
        members = client.read_gossip()
    finally:
        client.close()
    assert [(m.state, f"{m.address}:{m.port}") for m in members] == [("NODE_STATE_LEADER", target)]


def test_links_are_resolved_and_acked_by_the_link(client: EventStoreDBClient) -> None:
    stream, links = f"s-{uuid.uuid4()}", f"l-{uuid.uuid4()}"
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=_events("A", "B"))
    client.append_to_stream(
        links,
        current_version=StreamState.NO_STREAM,
        events=[
            NewEvent(
                type="$>", data=f"{n}@{stream}".encode(), content_type="application/octet-stream"
            )
            for n in (0, 1)
        ],
    )
    client.create_subscription_to_stream("g", links, resolve_links=True, message_timeout=0.5)
    subscription = client.read_subscription_to_stream("g", links)
    seen = []
    for event in subscription:
        assert event.link is not None
        seen.append((event.type, event.stream_name, event.link.stream_name))
        assert event.ack_id == event.link.id
        subscription.ack(event)
        if len(seen) == 2:
            break
    time.sleep(1.5)  # past the message timeout: an ack by the wrong id would bring them back
    info = client.get_subscription_info("g", links)
    subscription.stop()
    assert seen == [("A", stream, links), ("B", stream, links)]
    assert (info.total_items, info.total_in_flight_messages) == (2, 0)
    assert info.last_known_event_position == "1"  # the links' revisions, not the events'


def test_info_reports_consumers_and_deliveries(client: EventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=_events("A", "B"))
    client.create_subscription_to_stream("g", stream, consumer_strategy="PinnedByCorrelation")
    subscription = client.read_subscription_to_stream("g", stream)
    first = next(iter(subscription))  # B stays in flight too: the buffer holds both
    time.sleep(0.3)
    info = client.get_subscription_info("g", stream)
    subscription.ack(first)
    subscription.stop()
    assert info.consumer_strategy == "PinnedByCorrelation"
    assert (info.total_items, info.total_in_flight_messages) == (2, 2)
    assert info.last_known_event_position == "1"


def test_deleting_a_group_ends_its_consumers_with_not_found(client: EventStoreDBClient) -> None:
    stream = f"s-{uuid.uuid4()}"
    client.create_subscription_to_stream("g", stream)
    subscription = client.read_subscription_to_stream("g", stream)
    client.delete_subscription("g", stream)
    with pytest.raises(NotFound):
        next(iter(subscription))
    subscription.stop()
