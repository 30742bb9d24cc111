"""`CommandAccepted.order`: every mutation answers the order as it left it, field for field the view
the read model will hold at that version, so a client cache needs no second request."""

from __future__ import annotations

from typing import Any, Final

from tests.e2e.gql import JSON, RESULT_FIELDS, GraphQLClient, Orders, item, new_id

ORDER_FIELDS: Final = """
  __typename id customerId status items { productId name price qty } itemCount total
  trackingId carrier createdAt updatedAt version position history { id version type }
"""

WITH_ORDER: Final = f"... on CommandAccepted {{ order {{ {ORDER_FIELDS} }} }} {RESULT_FIELDS}"

PLACE: Final = f"""
mutation Place($input: PlaceOrderInput!, $key: String) {{
  placeOrder(input: $input, idempotencyKey: $key) {{ {WITH_ORDER} }}
}}"""

READ: Final = f"""
query Read($id: ID!, $v: Int) {{ order(id: $id, minVersion: $v) {{ {ORDER_FIELDS} }} }}"""


def mutation(name: str) -> str:
    """The mutation `name` selecting the accepted order."""
    input_type = name[0].upper() + name[1:] + "Input"
    return f"""
mutation Run($input: {input_type}!) {{ {name}(input: $input) {{ {WITH_ORDER} }} }}"""


async def run(gql: GraphQLClient, name: str, **fields: Any) -> JSON:
    """The CommandAccepted of mutation `name` with the input `fields`."""
    result: JSON = (await gql.data(mutation(name), {"input": fields}))[name]
    assert result["__typename"] == "CommandAccepted", result
    return result


async def place(gql: GraphQLClient, order_id: str, key: str | None = None, **input: Any) -> JSON:
    """The CommandAccepted of a placement."""
    payload = {"orderId": order_id, "customerId": "c-1", "items": [item()]} | input
    result: JSON = (await gql.data(PLACE, {"input": payload, "key": key}))["placeOrder"]
    assert result["__typename"] == "CommandAccepted", result
    return result


async def assert_view_equals(gql: GraphQLClient, accepted: JSON) -> None:
    """The view at the accepted version is the order the command returned, every field."""
    order = accepted["order"]
    assert (order["id"], order["version"]) == (accepted["orderId"], accepted["version"])
    assert order["position"] == accepted["position"]
    view = (await gql.data(READ, {"id": accepted["orderId"], "v": accepted["version"]}))["order"]
    assert view == order


async def test_every_mutation_returns_the_order_the_view_will_hold(orders: Orders) -> None:
    gql = orders.gql
    order_id = new_id()
    lines = [item("p-1", "12.50", 2), item("p-2", "0.99", 3)]
    placed = await place(gql, order_id, items=lines)
    assert placed["order"]["status"] == "PENDING"
    assert (placed["order"]["itemCount"], placed["order"]["total"]) == (5, "27.97")
    assert placed["order"]["createdAt"] == placed["order"]["updatedAt"]
    await assert_view_equals(gql, placed)
    added = await run(gql, "addItem", orderId=order_id, item=item("p-3", "5.00", 1))
    assert (added["order"]["itemCount"], added["order"]["total"]) == (6, "32.97")
    assert added["order"]["createdAt"] == placed["order"]["createdAt"]
    await assert_view_equals(gql, added)
    removed = await run(gql, "removeItem", orderId=order_id, productId="p-1")
    assert [line["productId"] for line in removed["order"]["items"]] == ["p-2", "p-3"]
    await assert_view_equals(gql, removed)
    paid = await run(
        gql, "takePayment", orderId=order_id, amount="7.97", method="card", transactionId="t"
    )
    assert paid["order"]["status"] == "PAID"
    await assert_view_equals(gql, paid)
    shipped = await run(gql, "shipOrder", orderId=order_id, trackingId="T-1", carrier="DHL")
    assert (shipped["order"]["status"], shipped["order"]["trackingId"]) == ("SHIPPED", "T-1")
    assert [e["type"] for e in shipped["order"]["history"]] == [
        "OrderPlaced",
        "ItemAdded",
        "ItemRemoved",
        "PaymentTaken",
        "OrderShipped",
    ]
    await assert_view_equals(gql, shipped)

    other = new_id()
    await place(gql, other)
    cancelled = await run(gql, "cancelOrder", orderId=other, reason="changed my mind")
    assert cancelled["order"]["status"] == "CANCELLED"
    await assert_view_equals(gql, cancelled)


async def test_a_replayed_placement_returns_the_original_order(orders: Orders) -> None:
    gql = orders.gql
    order_id, key = new_id(), new_id("key")
    first = await place(gql, order_id, key=key, items=[item("p-1", "3.00", 2)])
    again = await place(gql, order_id, key=key, items=[item("p-1", "3.00", 2)])
    assert again["eventIds"] == first["eventIds"]
    assert again["order"] == first["order"]
    await assert_view_equals(gql, again)
