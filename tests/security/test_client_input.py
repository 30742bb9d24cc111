"""Client mistakes are the client's: literals no argument takes are BAD_USER_INPUT (not masked
internal errors, not tracebacks in the log), and a document of several operations needs an
operationName (the GraphQL spec) that the document defines, over HTTP and both websocket
protocols."""

from __future__ import annotations

import pytest

from tests.e2e.gql import GraphQLClient, error_codes
from tests.e2e.ws import Protocol, graphql_ws
from tests.security.live import LogWatch, client, secured, staff
from tests.support.live_server import LiveServer

__all__ = ["client", "secured", "staff"]

PROTOCOLS: list[Protocol] = ["graphql-transport-ws", "graphql-ws"]
HUGE = "9" * 5000

BAD_LITERALS = [
    f"{{ orders(first: {HUGE}) {{ edges {{ cursor }} }} }}",
    f'{{ orderAt(id: "o-1", version: {HUGE}) {{ id }} }}',
    f'{{ orderEvents(id: "o-1", fromVersion: -{HUGE}) {{ id }} }}',
    '{ orderAt(id: "o-1", asOf: "0001-01-01T00:00:00+05:00") { id } }',
    '{ orderAt(id: "o-1", asOf: "9999-12-31T23:59:59-05:00") { id } }',
    'mutation { placeOrder(input: {customerId: "c-1", items: [{productId: "p", name: "n", '
    f"price: {HUGE}, qty: 1}}]}}) {{ __typename }} }}",
    # Found by the fuzz run: a cursor that is not ASCII is not base64 either.
    '{ orders(after: "\\u0080") { edges { cursor } } }',
]


def _quiet(log: LogWatch) -> None:
    text = log.text()
    assert "Traceback" not in text, text
    assert "level=ERROR" not in text, text


@pytest.mark.parametrize("query", BAD_LITERALS)
async def test_literals_no_argument_takes_are_bad_user_input(
    staff: GraphQLClient, secured: LiveServer, query: str
) -> None:
    log = LogWatch(secured)
    for _ in range(3):  # each time: no log flood
        result = await staff.execute(query)
        assert error_codes(result) == ["BAD_USER_INPUT"], result
        assert result.get("data") is None
    _quiet(log)


async def test_an_out_of_range_date_in_variables_is_bad_user_input(
    staff: GraphQLClient, secured: LiveServer
) -> None:
    log = LogWatch(secured)
    query = 'query($at: DateTime) { orderAt(id: "o-1", asOf: $at) { id } }'
    result = await staff.execute(query, {"at": "0001-01-01T00:00:00+05:00"})
    assert error_codes(result) == ["BAD_USER_INPUT"], result
    _quiet(log)


SEVERAL = """
query First { orders(first: 1) { edges { cursor } } }
query Second { dashboardStats { totalOrders } }
"""


async def test_several_operations_need_an_operation_name_over_http(
    staff: GraphQLClient,
) -> None:
    result = await staff.execute(SEVERAL)
    assert error_codes(result) == ["BAD_USER_INPUT"], result
    assert "operationName" in result["errors"][0]["message"]
    assert result.get("data") is None
    named = await staff.http.post(
        "/graphql",
        json={"query": SEVERAL, "operationName": "Second"},
        headers={"Authorization": f"Bearer {staff.token}"},
    )
    assert set(named.json()["data"]) == {"dashboardStats"}


@pytest.mark.parametrize(
    ("accept", "status"),
    [("application/json", 200), ("application/graphql-response+json", 400)],
)
async def test_an_operation_name_the_document_lacks_is_bad_user_input(
    staff: GraphQLClient, accept: str, status: int
) -> None:
    answer = await staff.http.post(
        "/graphql",
        json={"query": SEVERAL, "operationName": "Third"},
        headers={"Authorization": f"Bearer {staff.token}", "Accept": accept},
    )
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith(accept)
    result = answer.json()
    assert error_codes(result) == ["BAD_USER_INPUT"], result
    assert "Third" in result["errors"][0]["message"]
    assert result.get("data") is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_several_operations_need_an_operation_name_over_websockets(
    secured: LiveServer, protocol: Protocol
) -> None:
    document = """
    subscription First { dashboardStats { totalOrders } }
    query Second { dashboardStats { totalOrders } }
    """
    token = secured.token(sub="staff-1", role="staff")
    async with graphql_ws(secured.ws_url, token, protocol) as ws:
        sub = await ws.subscribe(document)
        message = await sub.message()
    payload = message.payload
    errors = payload if isinstance(payload, list) else payload.get("errors", [payload])
    codes = [(e.get("extensions") or {}).get("code") for e in errors]
    assert codes == ["BAD_USER_INPUT"], message
