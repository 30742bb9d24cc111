"""The query cost limit: a document that asks for too much is refused before it runs, normal
queries pass, and a small query from someone else is not held up by an attacker's."""

from __future__ import annotations

import asyncio

import httpx

from api.limits import QueryLimits
from tests.e2e.gql import GraphQLClient, Orders, accepted, error_codes, item, new_id
from tests.live_server import LiveServer
from tests.security.live import LogWatch, client, secured, staff, staff_orders

__all__ = ["client", "secured", "staff", "staff_orders"]

LIMITS = QueryLimits()

ORDER_FIELDS = (
    "id status total items { productId name price qty } history { id type data metadata }"
)
ATTACK = (
    "query Attack { "
    + " ".join(
        f"a{i}: orders(first: 100) {{ edges {{ node {{ {ORDER_FIELDS} }} }} }}" for i in range(30)
    )
    + " }"
)
DASHBOARD = """
query Dashboard($first: Int) {
  orders(first: $first) {
    edges { cursor node { id customerId status total itemCount createdAt updatedAt version
      items { productId name price qty } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def _customer_with_orders(
    staff_orders: Orders, secured: LiveServer, http: httpx.AsyncClient, count: int = 3
) -> GraphQLClient:
    customer = new_id("c")
    for _ in range(count):
        lines = [item(f"p-{k}", qty=k + 1) for k in range(5)]
        order_id = new_id("o")
        accepted(await staff_orders.place(order_id, customer_id=customer, items=lines))
        # The read model follows the log: wait for the view, so listings include the order.
        view = await staff_orders.gql.data(
            "query($id: ID!) { order(id: $id, minVersion: 1) { id } }", {"id": order_id}
        )
        assert view["order"] == {"id": order_id}
    return GraphQLClient(http, secured.token(sub=customer, role="customer"))


async def test_the_aliased_orders_attack_is_refused_before_it_runs(
    staff_orders: Orders, secured: LiveServer, client: httpx.AsyncClient
) -> None:
    attacker = await _customer_with_orders(staff_orders, secured, client)
    log = LogWatch(secured)
    result = await attacker.execute(ATTACK)
    assert error_codes(result) == ["QUERY_TOO_COMPLEX"], result
    assert result.get("data") is None, "an over-budget query must not run at all"
    assert "cost" in result["errors"][0]["message"]
    assert "event=query_refused reason=cost" in log.text()


async def test_a_dashboard_query_is_accepted(
    staff_orders: Orders, secured: LiveServer, client: httpx.AsyncClient
) -> None:
    customer = await _customer_with_orders(staff_orders, secured, client, count=3)
    for first in (20, 100):
        data = await customer.data(DASHBOARD, {"first": first})
        assert len(data["orders"]["edges"]) == 3
        assert all(len(e["node"]["items"]) == 5 for e in data["orders"]["edges"])


async def test_the_cost_counts_the_first_argument_from_variables(
    staff_orders: Orders, secured: LiveServer, client: httpx.AsyncClient
) -> None:
    customer = await _customer_with_orders(staff_orders, secured, client, count=1)
    query = f"""query($first: Int, $history: Int) {{ a: orders(first: $first) {{ edges {{ node {{
        {ORDER_FIELDS.replace("history {", "history(first: $history) {")} }} }} }} }}"""
    small = await customer.execute(query, {"first": 5, "history": 5})
    assert not small.get("errors"), small
    large = await customer.execute(query, {"first": 100, "history": 1000})
    assert error_codes(large) == ["QUERY_TOO_COMPLEX"], large


async def test_a_small_query_is_not_starved_by_attacks(
    staff_orders: Orders, secured: LiveServer, client: httpx.AsyncClient
) -> None:
    attacker = await _customer_with_orders(staff_orders, secured, client)
    bystander = await _customer_with_orders(staff_orders, secured, client, count=1)
    small = "{ orders(first: 1) { edges { node { id status } } } }"
    async with httpx.AsyncClient(base_url=secured.url, timeout=30.0, trust_env=False) as other:
        bystander = GraphQLClient(other, bystander.token)
        attacks = [asyncio.create_task(attacker.execute(ATTACK)) for _ in range(5)]
        # Bounded: with the attacks executing, this waited 20 s; refused, they cost nothing.
        async with asyncio.timeout(10):
            data = await bystander.data(small)
        results = await asyncio.gather(*attacks)
    assert len(data["orders"]["edges"]) == 1
    assert all(error_codes(r) == ["QUERY_TOO_COMPLEX"] for r in results)


async def test_history_is_paged(staff_orders: Orders, staff: GraphQLClient) -> None:
    order_id = new_id("o")
    accepted(await staff_orders.place(order_id))
    for n in range(4):
        accepted(await staff_orders.add_item(order_id, item(f"extra-{n}")))
    query = """query($id: ID!, $from: Int, $first: Int) { order(id: $id, minVersion: 5) {
        all: history { version } page: history(fromVersion: $from, first: $first) { version } } }"""
    data = await staff.data(query, {"id": order_id, "from": 1, "first": 2})
    assert [e["version"] for e in data["order"]["all"]] == [1, 2, 3, 4, 5]
    assert [e["version"] for e in data["order"]["page"]] == [2, 3]
    refused = await staff.execute(query, {"id": order_id, "from": 0, "first": 1001})
    assert error_codes(refused) == ["BAD_USER_INPUT"], refused


async def test_depth_aliases_and_tokens_answer_the_limits_code(staff: GraphQLClient) -> None:
    nesting = LIMITS.max_depth // 2 + 1
    deep = "query { events { " + "edges { node { " * nesting + "id" + " } }" * nesting + " } }"
    aliases = "query { " + " ".join(f"a{i}: __typename" for i in range(LIMITS.max_aliases + 1))
    tokens = "query { " + " ".join("__typename" for _ in range(LIMITS.max_tokens)) + " }"
    for document in (deep, aliases + " }", tokens):
        result = await staff.execute(document)
        # The schema is not deep enough for a valid document past the depth limit: that one
        # also fails other rules.
        assert error_codes(result)[0] == "QUERY_TOO_COMPLEX", result
        assert result.get("data") is None
