"""Ids derived from idempotency keys are keyed by the deployment's secret: nobody without it can
compute the order id a customer's keyed placeOrder will take (to place an order there first, or
to probe whether a guessable key was used), customer and key are encoded unambiguously, and
orders placed under the older public derivation still answer their retries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from application.codec import EventContext, encode
from application.handler import Accepted, CommandHandler
from application.idempotency import IdempotencyIds, legacy_event_id, legacy_order_id
from application.idempotency_secret import SECRET_STREAM, load_idempotency_ids
from application.repository import OrderRepository
from domain.commands import PlaceOrder
from domain.errors import OrderAlreadyExists
from domain.events import LineItem, OrderPlaced, order_stream
from eventstore.embedded import SQLiteEventStore
from eventstore.port import NO_STREAM, StoreWithGroups
from tests.support.processes import ServerProcess

ITEM = LineItem(product_id="p1", name="Pen", price=Decimal("2.50"), qty=4)
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    """A fresh embedded event store."""
    opened = await SQLiteEventStore.open(tmp_path)
    try:
        yield opened
    finally:
        await opened.close()


def _handler(store: SQLiteEventStore, ids: IdempotencyIds | None = None) -> CommandHandler:
    return CommandHandler(store, OrderRepository(store), clock=lambda: NOW, ids=ids)


async def _place(
    handler: CommandHandler, customer_id: str, key: str | None, order_id: str | None = None
) -> Accepted:
    order_id = order_id or handler.new_order_id(customer_id, key)
    command = PlaceOrder(order_id=order_id, customer_id=customer_id, items=(ITEM,))
    return await handler.handle(
        command,
        expected_version=None,
        actor=customer_id,
        correlation_id=str(uuid.uuid4()),
        idempotency_key=key,
    )


async def _place_the_legacy_way(
    store: SQLiteEventStore, customer_id: str, key: str, order_id: str | None = None
) -> Accepted:
    """What the service wrote for a keyed placeOrder before ids were keyed."""
    order_id = order_id or legacy_order_id(customer_id, key)
    event_id = legacy_event_id(order_id, key, customer_id)
    placed = OrderPlaced(
        order_id=order_id, customer_id=customer_id, items=(ITEM,), total=Decimal("10.00")
    )
    context = EventContext(
        correlation_id="legacy", causation_id="legacy", actor=customer_id, occurred_at=NOW
    )
    result = await store.append(
        order_stream(order_id), [encode(placed, context, event_id)], NO_STREAM
    )
    return Accepted(order_id=order_id, version=1, position=result.position, event_ids=(event_id,))


def test_keyed_ids_are_not_the_public_derivation_and_depend_on_the_secret() -> None:
    one, other = IdempotencyIds(b"1" * 32), IdempotencyIds(b"2" * 32)
    keyed = one.new_order_id("alice", "k-1")
    assert keyed == one.new_order_id("alice", "k-1")  # a retry names the same order
    assert keyed != legacy_order_id("alice", "k-1")
    assert keyed != other.new_order_id("alice", "k-1")
    assert one.event_ids(1, keyed, "k-1", "alice") != other.event_ids(1, keyed, "k-1", "alice")
    assert uuid.UUID(keyed).version == 8


def _appended(accepted: Accepted) -> tuple[object, ...]:
    """What the append answered (the returned order is the stream's, compared apart)."""
    return (accepted.order_id, accepted.version, accepted.position, accepted.event_ids)


def test_customer_and_key_are_encoded_unambiguously() -> None:
    ids = IdempotencyIds.random()
    assert ids.new_order_id("alice", "x:k") != ids.new_order_id("alice:x", "k")
    assert ids.event_ids(1, "o-1", "x:k", "alice") != ids.event_ids(1, "o-1", "k", "alice:x")
    # The public derivation did not tell them apart.
    assert legacy_order_id("alice", "x:k") == legacy_order_id("alice:x", "k")


async def test_a_retry_of_a_legacy_placement_answers_the_original_and_writes_nothing(
    store: SQLiteEventStore,
) -> None:
    original = await _place_the_legacy_way(store, "alice", "k-legacy")
    head = await store.head_position()
    handler = _handler(store)
    again = await _place(handler, "alice", "k-legacy")
    assert _appended(again) == _appended(original)
    assert again.order is not None
    assert again.order.state.customer_id == "alice"
    assert await store.head_position() == head
    keyed_id = handler.new_order_id("alice", "k-legacy")
    assert await store.read_stream(order_stream(keyed_id)) == []


async def test_a_retry_naming_its_legacy_order_answers_the_original(
    store: SQLiteEventStore,
) -> None:
    original = await _place_the_legacy_way(store, "alice", "k-named", order_id="named-1")
    head = await store.head_position()
    again = await _place(_handler(store), "alice", "k-named", order_id="named-1")
    assert _appended(again) == _appended(original)
    assert again.order is not None
    assert again.order.state.id == "named-1"
    assert await store.head_position() == head


async def test_a_legacy_order_is_not_replayed_to_the_customer_its_ambiguity_matched(
    store: SQLiteEventStore,
) -> None:
    await _place_the_legacy_way(store, "alice", "x:k")
    handler = _handler(store)
    # `alice:x` with key `k` derived alice's legacy ids: it gets an order of its own instead.
    mine = await _place(handler, "alice:x", "k")
    assert mine.order_id == handler.new_order_id("alice:x", "k")
    assert mine.order_id != legacy_order_id("alice", "x:k")
    with pytest.raises(OrderAlreadyExists):
        await _place(handler, "alice:x", "k", order_id=legacy_order_id("alice", "x:k"))


async def test_an_order_squatting_the_public_id_neither_blocks_nor_confuses_the_owner(
    store: SQLiteEventStore,
) -> None:
    handler = _handler(store)
    # Mallory computes the only id anyone can compute for alice's key, and places there first.
    squatted = legacy_order_id("alice", "checkout-7")
    await _place(handler, "mallory", None, order_id=squatted)
    mine = await _place(handler, "alice", "checkout-7")
    assert mine.order_id != squatted
    assert await _place(handler, "alice", "checkout-7") == mine  # and its retry still replays
    placed = await store.read_stream(order_stream(mine.order_id))
    assert len(placed) == 1


async def test_the_stored_secret_is_made_once_and_shared(tmp_path: Path) -> None:
    store = await SQLiteEventStore.open(tmp_path)
    try:
        racing = await asyncio.gather(*(load_idempotency_ids(store, None) for _ in range(5)))
        first = {ids.new_order_id("c", "k") for ids in racing}
        assert len(first) == 1
        assert len(await store.read_stream(SECRET_STREAM)) == 1
    finally:
        await store.close()
    store = await SQLiteEventStore.open(tmp_path)  # a restart
    try:
        again = await load_idempotency_ids(store, None)
        assert {again.new_order_id("c", "k")} == first
        configured = await load_idempotency_ids(store, "z" * 32)
        assert configured.new_order_id("c", "k") not in first
    finally:
        await store.close()


PLACE = """mutation($input: PlaceOrderInput!, $key: String) {
  placeOrder(input: $input, idempotencyKey: $key) {
    __typename ... on CommandAccepted { orderId version position eventIds }
  }
}"""


def _place_over_http(process: ServerProcess, token: str, key: str) -> dict[str, Any]:
    line = {"productId": "p1", "name": "Pen", "price": "2.50", "qty": 4}
    answer = httpx.post(
        f"{process.url}/graphql",
        json={
            "query": PLACE,
            "variables": {"input": {"customerId": "c-9", "items": [line]}, "key": key},
        },
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
        timeout=30,
    )
    result: dict[str, Any] = answer.json()["data"]["placeOrder"]
    assert result["__typename"] == "CommandAccepted", result
    return result


def test_a_keyed_retry_after_a_restart_answers_the_original(tmp_path: Path) -> None:
    from tests.e2e.gql import make_token

    secret = "restart-" + uuid.uuid4().hex + uuid.uuid4().hex
    token = make_token(secret, sub="c-9", role="customer")
    data = tmp_path / "data"
    with ServerProcess(data_dir=data, jwt_secret=secret, log_path=tmp_path / "1.log") as first:
        placed = _place_over_http(first, token, "restart-key")
    with ServerProcess(data_dir=data, jwt_secret=secret, log_path=tmp_path / "2.log") as second:
        assert _place_over_http(second, token, "restart-key") == placed
        assert placed["orderId"] != legacy_order_id("c-9", "restart-key")


@asynccontextmanager
async def _two_processes(kind: str, tmp_path: Path) -> AsyncIterator[list[StoreWithGroups]]:
    """Two stores on one backend, as two API processes of one deployment open them."""
    if kind == "postgres":
        from eventstore.postgres import PostgresEventStore
        from tests.support.postgres_db import fresh_schema

        async with fresh_schema() as url:
            stores = [await PostgresEventStore.open(url, pool_size=2) for _ in range(2)]
            try:
                yield list(stores)
            finally:
                for store in stores:
                    await store.close()
        return
    from eventstore.esdb import EventStoreDBStore
    from tests.support.esdb_server.fixture import run_test_server

    async with run_test_server(tmp_path / "esdb-server") as url:
        connected = [await EventStoreDBStore.connect(url) for _ in range(2)]
        try:
            yield list(connected)
        finally:
            for client in connected:
                await client.close()


@pytest.mark.parametrize("kind", ["postgres", "esdb"])
async def test_processes_sharing_a_store_share_the_secret(kind: str, tmp_path: Path) -> None:
    async with _two_processes(kind, tmp_path) as (one, other):
        loaded = await asyncio.gather(
            *(load_idempotency_ids(store, None) for store in (one, other, one, other))
        )
        assert len({ids.new_order_id("c", "k") for ids in loaded}) == 1
        assert len(await one.read_stream(SECRET_STREAM)) == 1
