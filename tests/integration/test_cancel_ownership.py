"""A customer's cancelOrder on another customer's order, through the real app: the domain refuses
it (`NotOrderOwner`) and the client gets the contract's top-level FORBIDDEN error, whatever else
the request says, and nothing is written."""

from __future__ import annotations

import httpx

from tests.integration.test_auth_app import PLACE, base_url, bearer, client, order_input

__all__ = ["base_url", "client"]

CANCEL = """
mutation($version: Int) {
  cancelOrder(input: {orderId: "o-5", reason: "no", expectedVersion: $version}) {
    __typename ... on CommandAccepted { version } ... on CommandError { code }
  }
}
"""


async def cancel(
    client: httpx.AsyncClient, customer: str, version: int | None
) -> dict[str, object]:
    response = await client.post(
        "/graphql",
        json={"query": CANCEL, "variables": {"version": version}},
        headers=bearer(customer, "customer"),
    )
    body: dict[str, object] = response.json()
    return body


async def test_another_customer_is_forbidden_even_with_a_wrong_expected_version(
    client: httpx.AsyncClient,
) -> None:
    placed = await client.post(
        "/graphql",
        json={"query": PLACE, "variables": {"input": order_input("o-5", "c-5")}},
        headers=bearer("s", "staff"),
    )
    assert placed.json()["data"]["placeOrder"]["version"] == 1
    for version in (None, 1, 99):
        refused = await cancel(client, "c-1", version)
        assert refused["data"] is None  # cancelOrder is non-null: the error nulls `data`
        assert refused["errors"] == [
            {
                "message": "This order belongs to another customer.",
                "locations": [{"line": 3, "column": 3}],
                "path": ["cancelOrder"],
                "extensions": {"code": "FORBIDDEN"},
            }
        ]
    own = await cancel(client, "c-5", 1)
    assert own["data"] == {"cancelOrder": {"__typename": "CommandAccepted", "version": 2}}
