"""The query cost limit: a document whose answer could weigh too much is refused before it runs,
normal queries pass, and a small query from someone else is not held up by an attacker's.

The heavy attacks run against a customer with 100 orders of 100 items whose names are the
longest the domain accepts (200 four-byte characters): the data the cost model prices."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from api.http.limits import QueryLimits
from tests.e2e.gql import GraphQLClient, Orders, accepted, error_codes, item, new_id
from tests.security.live import LogWatch, client, secured, staff, staff_orders
from tests.support.live_server import LiveServer

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
    for first in (20, 50):
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


HEAVY_ORDERS = 100
LONG_NAME = "\U0001f600" * 200
"""The longest item name the domain accepts, in the characters that encode longest."""

EVENT_DATA_ATTACK = (
    "query { "
    + " ".join(
        f"a{i}: orders(status: PENDING, first: 100) {{ edges {{ node {{ history(first: 1) "
        "{ data } } } }"
        for i in range(30)
    )
    + " }"
)
PAGE_VARIABLE_ATTACK = (
    "query($n: Int, $id: ID!) { "
    + " ".join(f"a{i}: orderEvents(id: $id, first: $n) {{ id type data }}" for i in range(30))
    + " }"
)


def rss_bytes(pid: int) -> int:
    """The resident memory of a process (Linux), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


async def seed_heavy_orders(staff_orders: Orders, customer: str, count: int) -> list[str]:
    """`count` orders of 100 items with the longest names, for `customer`; their ids."""
    ids = []
    for n in range(count):
        lines = [item(f"p-{k}", name=LONG_NAME, price="999999999.99") for k in range(100)]
        order_id = new_id(f"heavy{n}")
        accepted(await staff_orders.place(order_id, customer_id=customer, items=lines))
        ids.append(order_id)
    data = await staff_orders.gql.data(
        "query($id: ID!) { order(id: $id, minVersion: 1) { id } }", {"id": ids[-1]}
    )
    assert data["order"] == {"id": ids[-1]}
    return ids


async def _heavy_customer(secured: LiveServer) -> tuple[str, list[str]]:
    async with httpx.AsyncClient(base_url=secured.url, timeout=60.0, trust_env=False) as http:
        staff = GraphQLClient(http, secured.token(sub="staff-1", role="staff"))
        customer = new_id("heavy")
        ids = await seed_heavy_orders(Orders(staff), customer, HEAVY_ORDERS)
    return secured.token(sub=customer, role="customer"), ids


@pytest.fixture(scope="module")
def heavy(secured: LiveServer) -> tuple[str, list[str]]:
    """A customer's token and its 100 heavy orders (placed once for the module)."""
    return asyncio.run(_heavy_customer(secured))


async def test_event_data_is_priced_by_its_bound_so_the_86_mb_attack_is_refused(
    heavy: tuple[str, list[str]], secured: LiveServer, client: httpx.AsyncClient
) -> None:
    attacker = GraphQLClient(client, heavy[0])
    pid = secured.process.pid
    assert pid is not None
    before = rss_bytes(pid)
    for _ in range(4):
        started = time.perf_counter()
        result = await attacker.execute(EVENT_DATA_ATTACK)
        # Generous: refused before execution it takes milliseconds; executed it took 4 s.
        assert time.perf_counter() - started < 2.0
        assert error_codes(result) == ["QUERY_TOO_COMPLEX"], result
        assert result.get("data") is None
    # Executed, the attack took RSS from 82 MB to 418 MB; refused, it allocates nothing lasting.
    assert rss_bytes(pid) - before < 64 * 2**20


@pytest.mark.parametrize("n", [1000, 1000.0, "1000", 10**30])
async def test_a_page_size_variable_counts_in_every_numeric_form(
    heavy: tuple[str, list[str]], client: httpx.AsyncClient, n: object
) -> None:
    attacker = GraphQLClient(client, heavy[0])
    result = await attacker.execute(PAGE_VARIABLE_ATTACK, {"n": n, "id": heavy[1][0]})
    assert error_codes(result) == ["QUERY_TOO_COMPLEX"], result
    assert result.get("data") is None


async def test_a_page_within_the_cost_answers_within_its_bound(
    heavy: tuple[str, list[str]], client: httpx.AsyncClient
) -> None:
    """The cost is an upper bound of the answer's bytes: measured on the heaviest data."""
    from graphql import OperationDefinitionNode, parse

    from api.graphql.analysis import analyse_document
    from api.graphql.schema import build_schema
    from api.http.limits import QueryLimits

    customer = GraphQLClient(client, heavy[0])
    query = """query($first: Int) { orders(first: $first) { edges { cursor node { id status
        total items { productId name price qty } history(first: 2) { type data metadata } } }
        pageInfo { hasNextPage endCursor } } }"""
    document = parse(query)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    for first in (1, 5):
        measured = analyse_document(
            build_schema()._schema, document, operation, {"first": first}, QueryLimits()
        )
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": {"first": first}},
            headers={"authorization": f"Bearer {customer.token}"},
        )
        body = response.json()
        assert not body.get("errors"), body
        assert len(body["data"]["orders"]["edges"]) == first
        assert len(response.content) <= measured.cost
