"""The write side over real HTTP: the order life cycle, every refused transition, concurrency."""

from __future__ import annotations

import asyncio
import uuid

from tests.e2e.gql import Orders, accepted, item, new_id, refused


async def test_place_pay_ship_gives_versions_1_2_3(orders: Orders) -> None:
    order_id = new_id()
    placed = accepted(
        await orders.place(order_id, items=[item("p-1", "12.50", 2), item("p-2", "0.99", 1)]), 1
    )
    paid = accepted(await orders.pay(order_id, amount="25.99"), 2)
    shipped = accepted(await orders.ship(order_id), 3)

    for result in (placed, paid, shipped):
        assert result["orderId"] == order_id
        assert len(result["eventIds"]) == 1
        uuid.UUID(result["eventIds"][0])
    positions = [int(r["position"]) for r in (placed, paid, shipped)]
    assert positions == sorted(set(positions)), "positions strictly increase"

    events = await orders.order_events(order_id)
    assert [e["type"] for e in events] == ["OrderPlaced", "PaymentTaken", "OrderShipped"]
    assert [e["version"] for e in events] == [1, 2, 3]
    assert [e["id"] for e in events] == [r["eventIds"][0] for r in (placed, paid, shipped)]
    assert [e["position"] for e in events] == [r["position"] for r in (placed, paid, shipped)]
    assert {e["streamId"] for e in events} == {f"order-{order_id}"}
    assert events[0]["data"] == {
        "orderId": order_id,
        "customerId": "c-1",
        "items": [
            {"id": "p-1", "name": "Widget", "price": "12.50", "qty": 2},
            {"id": "p-2", "name": "Widget", "price": "0.99", "qty": 1},
        ],
        "total": "25.99",
    }
    assert events[1]["data"] == {
        "amount": "25.99",
        "method": "card",
        "transactionId": f"tx-{order_id}",
    }
    assert events[2]["data"] == {"trackingId": f"trk-{order_id}", "carrier": "DHL"}
    metadata = events[0]["metadata"]
    assert metadata["schemaVersion"] == 2
    assert metadata["actor"] == "staff-1"
    assert metadata["$correlationId"]
    assert metadata["$causationId"]
    assert metadata["occurredAt"]


async def test_place_without_order_id_gets_a_server_made_id(orders: Orders) -> None:
    result = accepted(await orders.place(None), 1)
    events = await orders.order_events(result["orderId"])
    assert [e["type"] for e in events] == ["OrderPlaced"]


async def test_amend_then_cancel(orders: Orders) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id), 1)
    accepted(await orders.add_item(order_id, item("p-2", "5.00", 3)), 2)
    accepted(await orders.remove_item(order_id, "p-1"), 3)
    accepted(await orders.cancel(order_id), 4)
    events = await orders.order_events(order_id)
    assert [e["type"] for e in events] == [
        "OrderPlaced",
        "ItemAdded",
        "ItemRemoved",
        "OrderCancelled",
    ]
    assert events[1]["data"]["total"] == "25.00"
    assert events[2]["data"] == {"productId": "p-1", "total": "15.00"}


async def _paid(orders: Orders) -> str:
    order_id = new_id()
    accepted(await orders.place(order_id))
    accepted(await orders.pay(order_id))
    return order_id


async def test_refused_transitions_give_invalid_transition_with_status(orders: Orders) -> None:
    pending = new_id()
    accepted(await orders.place(pending))
    paid = await _paid(orders)
    shipped = await _paid(orders)
    accepted(await orders.ship(shipped))
    cancelled = new_id()
    accepted(await orders.place(cancelled))
    accepted(await orders.cancel(cancelled))

    cases = [
        (await orders.pay(paid), "PAID"),
        (await orders.ship(pending), "PENDING"),
        (await orders.cancel(shipped), "SHIPPED"),
        (await orders.cancel(cancelled), "CANCELLED"),
        (await orders.add_item(paid, item("p-9")), "PAID"),
        (await orders.remove_item(paid, "p-1"), "PAID"),
        (await orders.pay(cancelled), "CANCELLED"),
        (await orders.ship(cancelled), "CANCELLED"),
        (await orders.remove_item(pending, "p-1"), "PENDING"),  # the last item
        (await orders.add_item(pending, item("p-1")), "PENDING"),  # already in the order
        (await orders.remove_item(pending, "p-404"), "PENDING"),  # not in the order
    ]
    for result, status in cases:
        refused(result, "InvalidTransition", status=status, code="INVALID_TRANSITION")
        assert result["message"]

    # CONTRACT: "amount must equal the order's total" is a command rule; broken, it is refused.
    wrong_amount = await orders.pay(pending, amount="9.99")
    refused(wrong_amount, "InvalidTransition", status="PENDING", code="INVALID_TRANSITION")

    assert len(await orders.order_events(pending)) == 1
    assert len(await orders.order_events(paid)) == 2
    assert len(await orders.order_events(shipped)) == 3
    assert len(await orders.order_events(cancelled)) == 2


async def test_commands_on_a_missing_order_give_order_not_found(orders: Orders) -> None:
    missing = new_id("missing")
    for result in (
        await orders.pay(missing),
        await orders.ship(missing),
        await orders.cancel(missing),
        await orders.add_item(missing, item()),
        await orders.remove_item(missing, "p-1"),
    ):
        refused(result, "OrderNotFound", orderId=missing, code="ORDER_NOT_FOUND")
    assert await orders.order_events(missing) == []


async def test_placing_an_existing_order_gives_order_already_exists(orders: Orders) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id))
    again = await orders.place(order_id, customer_id="c-2")
    refused(again, "OrderAlreadyExists", orderId=order_id, code="ORDER_ALREADY_EXISTS")
    assert len(await orders.order_events(order_id)) == 1


async def test_stale_expected_version_conflicts_and_writes_nothing(orders: Orders) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id))
    accepted(await orders.add_item(order_id, item("p-2"), expectedVersion=1), 2)

    stale = await orders.pay(order_id, amount="20.00", expectedVersion=1)
    refused(
        stale,
        "ConcurrencyConflict",
        code="CONCURRENCY_CONFLICT",
        expectedVersion=1,
        actualVersion=2,
    )
    ahead = await orders.cancel(order_id, expectedVersion=5)
    refused(ahead, "ConcurrencyConflict", expectedVersion=5, actualVersion=2)
    assert [e["version"] for e in await orders.order_events(order_id)] == [1, 2]

    accepted(await orders.pay(order_id, amount="20.00", expectedVersion=2), 3)


async def test_twenty_concurrent_payments_one_wins(orders: Orders) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id))

    results = await asyncio.gather(*(orders.pay(order_id) for _ in range(20)))

    kinds = [r["__typename"] for r in results]
    assert kinds.count("CommandAccepted") == 1, kinds
    assert kinds.count("InvalidTransition") == 19, kinds
    assert all(r["status"] == "PAID" for r in results if r["__typename"] == "InvalidTransition")
    winner = next(r for r in results if r["__typename"] == "CommandAccepted")
    assert winner["version"] == 2
    events = await orders.order_events(order_id)
    assert [e["type"] for e in events] == ["OrderPlaced", "PaymentTaken"]


async def test_place_order_retry_with_the_same_key_is_idempotent(orders: Orders) -> None:
    order_id = new_id()
    key = f"key-{uuid.uuid4()}"
    first = accepted(await orders.place(order_id, key=key), 1)
    retries = await asyncio.gather(*(orders.place(order_id, key=key) for _ in range(3)))
    assert all(r == first for r in retries), retries
    assert len(await orders.order_events(order_id)) == 1

    other_key = await orders.place(order_id, key=f"key-{uuid.uuid4()}")
    refused(other_key, "OrderAlreadyExists", orderId=order_id)
    no_key = await orders.place(order_id)
    refused(no_key, "OrderAlreadyExists", orderId=order_id)
    assert len(await orders.order_events(order_id)) == 1


async def test_place_order_retry_without_order_id_returns_the_original(orders: Orders) -> None:
    key = f"key-{uuid.uuid4()}"
    first = accepted(await orders.place(None, key=key), 1)
    again = await orders.place(None, key=key)
    assert again == first
    assert len(await orders.order_events(first["orderId"])) == 1
