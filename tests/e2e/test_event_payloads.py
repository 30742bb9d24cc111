"""`Event.payload`: the upcast data as typed union members, and the event log's page starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from tests.e2e.gql import GraphQLClient, Orders, accepted, item, new_id

PAYLOAD: Final = """
  __typename
  ... on OrderPlacedData { orderId customerId items { productId name price qty } total }
  ... on PaymentTakenData { amount method transactionId }
  ... on OrderShippedData { trackingId carrier }
  ... on OrderCancelledData { reason }
  ... on ItemAddedData { item { productId name price qty } total }
  ... on ItemRemovedData { productId total }
  ... on UnknownEventData { data }
"""

ORDER_PAYLOADS: Final = f"""
query Payloads($id: ID!) {{ orderEvents(id: $id) {{ type data payload {{ {PAYLOAD} }} }} }}"""

EVENTS_PAGE: Final = """
query Page($after: String, $first: Int, $types: [String!]) {
  events(after: $after, first: $first, types: $types) {
    edges { cursor }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def payloads(gql: GraphQLClient, order_id: str) -> list[dict[str, object]]:
    events = (await gql.data(ORDER_PAYLOADS, {"id": order_id}))["orderEvents"]
    return [event["payload"] for event in events]


async def test_every_event_type_has_its_typed_payload(orders: Orders) -> None:
    order_id = new_id()
    accepted(await orders.place(order_id, customer_id="c-p", items=[item("p-1", "10.00", 2)]))
    accepted(await orders.add_item(order_id, item("p-2", "2.50", 2)))
    accepted(await orders.remove_item(order_id, "p-1"))
    accepted(await orders.pay(order_id, amount="5.00"))
    accepted(await orders.ship(order_id))
    cancelled = new_id()
    accepted(await orders.place(cancelled, customer_id="c-p"))
    accepted(await orders.cancel(cancelled, reason="out of stock"))

    line = {"productId": "p-1", "name": "Widget", "price": "10.00", "qty": 2}
    added = {"productId": "p-2", "name": "Widget", "price": "2.50", "qty": 2}
    assert await payloads(orders.gql, order_id) == [
        {
            "__typename": "OrderPlacedData",
            "orderId": order_id,
            "customerId": "c-p",
            "items": [line],
            "total": "20.00",
        },
        {"__typename": "ItemAddedData", "item": added, "total": "25.00"},
        {"__typename": "ItemRemovedData", "productId": "p-1", "total": "5.00"},
        {
            "__typename": "PaymentTakenData",
            "amount": "5.00",
            "method": "card",
            "transactionId": f"tx-{order_id}",
        },
        {"__typename": "OrderShippedData", "trackingId": f"trk-{order_id}", "carrier": "DHL"},
    ]
    assert (await payloads(orders.gql, cancelled))[1] == {
        "__typename": "OrderCancelledData",
        "reason": "out of stock",
    }


async def test_a_customer_sees_the_payload_as_it_sees_the_data(
    orders: Orders, token_for: Callable[..., str]
) -> None:
    customer = new_id("c")
    order_id = new_id()
    accepted(await orders.place(order_id, customer_id=customer))
    accepted(await orders.cancel(order_id, reason="fraud suspected"))  # by staff
    gql = orders.gql.with_token(token_for(sub=customer, role="customer"))
    events = (await gql.data(ORDER_PAYLOADS, {"id": order_id}))["orderEvents"]
    reason = events[1]["payload"]["reason"]
    assert reason == events[1]["data"]["reason"]
    assert reason != "fraud suspected"


async def test_event_pages_tell_where_they_start(orders: Orders) -> None:
    marker = await orders.marker()
    for _ in range(3):
        accepted(await orders.place(new_id()))
    gql = orders.gql
    first = (await gql.data(EVENTS_PAGE, {"first": 1}))["events"]
    assert first["pageInfo"]["hasPreviousPage"] is False
    assert first["pageInfo"]["startCursor"] == first["edges"][0]["cursor"]
    later = (await gql.data(EVENTS_PAGE, {"after": marker, "first": 2}))["events"]
    assert later["pageInfo"]["hasPreviousPage"] is True
    assert later["pageInfo"]["startCursor"] == later["edges"][0]["cursor"]
    assert int(later["pageInfo"]["startCursor"]) > int(marker)
    # Before the first event of a type nothing of it was paged past.
    none_before = (await gql.data(EVENTS_PAGE, {"after": marker, "types": ["NoSuchEvent"]}))[
        "events"
    ]
    assert none_before["edges"] == []
    assert (none_before["pageInfo"]["hasPreviousPage"], none_before["pageInfo"]["startCursor"]) == (
        False,
        None,
    )
