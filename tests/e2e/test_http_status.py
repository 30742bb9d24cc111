"""GraphQL over HTTP status codes: request errors under application/graphql-response+json are
HTTP 400 without `data`; plain application/json keeps 200; field errors stay 200 on both."""

from __future__ import annotations

import pytest

from tests.e2e.gql import GraphQLClient, new_id

GRAPHQL_RESPONSE = {"Accept": "application/graphql-response+json"}
PLAIN_JSON = {"Accept": "application/json"}

REQUEST_ERRORS = {
    "parse": ("{", None),
    "validation": ("{ nope }", None),
    "coercion": (
        "query($first: Int) { orders(first: $first) { edges { cursor } } }",
        {"first": "x"},
    ),
    "subscription": ("subscription { dashboardStats { totalOrders } }", None),
}


@pytest.mark.parametrize("kind", sorted(REQUEST_ERRORS))
async def test_request_errors_are_400_without_data_under_graphql_response_json(
    gql: GraphQLClient, kind: str
) -> None:
    query, variables = REQUEST_ERRORS[kind]
    response = await gql.post(query, variables, headers=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    body = response.json()
    assert "data" not in body
    assert body["errors"]


@pytest.mark.parametrize("kind", sorted(REQUEST_ERRORS))
async def test_request_errors_under_plain_json_stay_200(gql: GraphQLClient, kind: str) -> None:
    query, variables = REQUEST_ERRORS[kind]
    response = await gql.post(query, variables, headers=PLAIN_JSON)
    assert response.status_code == 200
    assert response.json()["data"] is None


async def test_a_field_error_is_200_with_data_under_graphql_response_json(
    gql: GraphQLClient,
) -> None:
    response = await gql.post(
        "query($id: ID!) { orderEvents(id: $id, first: 5000) { type } }",
        {"id": new_id()},
        headers=GRAPHQL_RESPONSE,
    )
    assert response.status_code == 200
    body = response.json()
    assert "data" in body
    assert body["errors"][0]["path"] == ["orderEvents"]


async def test_a_mutation_over_get_is_refused(gql: GraphQLClient) -> None:
    response = await gql.http.get(
        "/graphql",
        params={
            "query": 'mutation { cancelOrder(input: {orderId: "o-1", reason: "x"}) { __typename } }'
        },
        headers={**GRAPHQL_RESPONSE, "Authorization": f"Bearer {gql.token}"},
    )
    assert response.status_code == 405


@pytest.mark.parametrize("accept", ["text/plain", "application/xml, text/html;q=0.9"])
async def test_an_accept_header_without_json_is_406_and_runs_nothing(
    gql: GraphQLClient, accept: str
) -> None:
    order_id = new_id()
    response = await gql.post(
        'mutation($id: ID) { placeOrder(input: {orderId: $id, customerId: "c-1", '
        'items: [{productId: "p", name: "n", price: "1.00", qty: 1}]}) { __typename } }',
        {"id": order_id},
        headers={"Accept": accept},
    )
    assert response.status_code == 406
    events = await gql.post("query($id: ID!) { orderEvents(id: $id) { type } }", {"id": order_id})
    assert events.json() == {"data": {"orderEvents": []}}


@pytest.mark.parametrize("accept", ["*/*", "application/*", "application/json;q=0.1", ""])
async def test_json_or_wildcard_accept_headers_are_answered(
    gql: GraphQLClient, accept: str
) -> None:
    response = await gql.post("{ __typename }", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_a_subscription_over_http_says_where_subscriptions_are_served(
    gql: GraphQLClient,
) -> None:
    response = await gql.post("subscription { dashboardStats { totalOrders } }", None)
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "websockets" in error["message"]
