"""A small GraphQL-over-HTTP client for the end-to-end tests, with tokens and query texts."""

from __future__ import annotations

import time
import uuid
from typing import Any, Final

import httpx
import jwt

JSON = dict[str, Any]


def make_token(secret: str, *, sub: str, role: str, ttl: float = 3600.0) -> str:
    """An HS256 bearer token as the server expects it (CONTRACT section 2, Access)."""
    claims = {"sub": sub, "role": role, "exp": int(time.time() + ttl)}
    return jwt.encode(claims, secret, algorithm="HS256")


def new_id(prefix: str = "o") -> str:
    """A fresh id matching the contract's id pattern, unique per test run."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class _Default:
    """Marker for "use the client's own token"."""


DEFAULT: Final = _Default()


class GraphQLClient:
    """Posts GraphQL requests with a bearer token; does not own the httpx client it is given."""

    def __init__(self, http: httpx.AsyncClient, token: str | None) -> None:
        self.http = http
        self.token = token

    def with_token(self, token: str | None) -> GraphQLClient:
        """The same connection pool, another caller."""
        return GraphQLClient(self.http, token)

    async def post(
        self,
        query: str,
        variables: JSON | None = None,
        *,
        token: str | _Default | None = DEFAULT,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The raw HTTP response to one GraphQL request."""
        bearer = self.token if isinstance(token, _Default) else token
        all_headers = {"Accept": "application/json"}
        if bearer is not None:
            all_headers["Authorization"] = f"Bearer {bearer}"
        all_headers.update(headers or {})
        body: JSON = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await self.http.post("/graphql", json=body, headers=all_headers)

    async def execute(
        self, query: str, variables: JSON | None = None, *, token: str | _Default | None = DEFAULT
    ) -> JSON:
        """The decoded GraphQL response (`data` and/or `errors`)."""
        response = await self.post(query, variables, token=token)
        assert response.headers.get("content-type", "").startswith(
            ("application/json", "application/graphql-response+json")
        ), f"not a JSON response ({response.status_code}): {response.text[:500]}"
        result: JSON = response.json()
        return result

    async def data(
        self, query: str, variables: JSON | None = None, *, token: str | _Default | None = DEFAULT
    ) -> JSON:
        """The `data` of a response that must have no errors."""
        result = await self.execute(query, variables, token=token)
        assert not result.get("errors"), f"unexpected GraphQL errors: {result['errors']}"
        data: JSON = result["data"]
        return data


def no_data(result: JSON) -> bool:
    """True when a response carries no value: `data` absent, null, or every root field null."""
    data = result.get("data")
    return data is None or all(value is None for value in data.values())


def error_codes(result: JSON) -> list[str | None]:
    """The `extensions.code` of every top-level error of a response."""
    return [(e.get("extensions") or {}).get("code") for e in result.get("errors") or []]


RESULT_FIELDS: Final = """
  __typename
  ... on CommandAccepted { orderId version position eventIds }
  ... on CommandError { code message }
  ... on ValidationFailed { field }
  ... on OrderNotFound { orderId }
  ... on OrderAlreadyExists { orderId }
  ... on InvalidTransition { status }
  ... on ConcurrencyConflict { expectedVersion actualVersion }
"""

EVENT_FIELDS: Final = "id streamId type version position occurredAt data metadata"

ORDER_STATE_FIELDS: Final = """
  id customerId status total trackingId carrier version asOf
  items { productId name price qty }
"""

PLACE: Final = f"""
mutation Place($input: PlaceOrderInput!, $key: String) {{
  placeOrder(input: $input, idempotencyKey: $key) {{ {RESULT_FIELDS} }}
}}"""

MUTATIONS: Final = {
    name: f"""
mutation {name[0].upper() + name[1:]}($input: {name[0].upper() + name[1:]}Input!) {{
  {name}(input: $input) {{ {RESULT_FIELDS} }}
}}"""
    for name in ("takePayment", "shipOrder", "cancelOrder", "addItem", "removeItem")
}

ORDER_EVENTS: Final = f"""
query OrderEvents($id: ID!, $fromVersion: Int, $first: Int) {{
  orderEvents(id: $id, fromVersion: $fromVersion, first: $first) {{ {EVENT_FIELDS} }}
}}"""

ORDER_AT: Final = f"""
query OrderAt($id: ID!, $asOf: DateTime, $version: Int) {{
  orderAt(id: $id, asOf: $asOf, version: $version) {{ {ORDER_STATE_FIELDS} }}
}}"""

EVENTS: Final = f"""
query Events($after: String, $first: Int, $types: [String!], $since: DateTime, $until: DateTime) {{
  events(after: $after, first: $first, types: $types, since: $since, until: $until) {{
    edges {{ cursor node {{ {EVENT_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""


def item(product_id: str = "p-1", price: str = "10.00", qty: int = 1, name: str = "Widget") -> JSON:
    """A `LineItemInput`."""
    return {"productId": product_id, "name": name, "price": price, "qty": qty}


class Orders:
    """Drives the contract's mutations and event-log queries; results come back as dicts."""

    def __init__(self, gql: GraphQLClient) -> None:
        self.gql = gql

    async def place(
        self,
        order_id: str | None,
        *,
        customer_id: str = "c-1",
        items: list[JSON] | None = None,
        key: str | None = None,
    ) -> JSON:
        """`placeOrder`'s CommandResult."""
        payload: JSON = {"customerId": customer_id, "items": items or [item()]}
        if order_id is not None:
            payload["orderId"] = order_id
        data = await self.gql.data(PLACE, {"input": payload, "key": key})
        result: JSON = data["placeOrder"]
        return result

    async def command(self, name: str, **fields: Any) -> JSON:
        """Another mutation's CommandResult, `fields` being its input (camelCase keys)."""
        data = await self.gql.data(MUTATIONS[name], {"input": fields})
        result: JSON = data[name]
        return result

    async def pay(self, order_id: str, amount: str = "10.00", **extra: Any) -> JSON:
        """`takePayment` by card; `extra` adds or overrides input fields."""
        fields = {"amount": amount, "method": "card", "transactionId": f"tx-{order_id}"}
        return await self.command("takePayment", orderId=order_id, **(fields | extra))

    async def ship(self, order_id: str, **extra: Any) -> JSON:
        """`shipOrder` with DHL; `extra` adds or overrides input fields."""
        fields = {"trackingId": f"trk-{order_id}", "carrier": "DHL"}
        return await self.command("shipOrder", orderId=order_id, **(fields | extra))

    async def cancel(self, order_id: str, reason: str = "changed my mind", **extra: Any) -> JSON:
        """`cancelOrder`."""
        return await self.command("cancelOrder", orderId=order_id, reason=reason, **extra)

    async def add_item(self, order_id: str, line: JSON, **extra: Any) -> JSON:
        """`addItem`."""
        return await self.command("addItem", orderId=order_id, item=line, **extra)

    async def remove_item(self, order_id: str, product_id: str, **extra: Any) -> JSON:
        """`removeItem`."""
        return await self.command("removeItem", orderId=order_id, productId=product_id, **extra)

    async def order_events(
        self, order_id: str, from_version: int = 0, first: int = 100
    ) -> list[JSON]:
        """`orderEvents`."""
        data = await self.gql.data(
            ORDER_EVENTS, {"id": order_id, "fromVersion": from_version, "first": first}
        )
        events: list[JSON] = data["orderEvents"]
        return events

    async def order_at(
        self, order_id: str, *, as_of: str | None = None, version: int | None = None
    ) -> JSON | None:
        """`orderAt`: the folded state, or None."""
        data = await self.gql.data(ORDER_AT, {"id": order_id, "asOf": as_of, "version": version})
        state: JSON | None = data["orderAt"]
        return state

    async def events_page(self, **args: Any) -> JSON:
        """One page of `events` (an EventConnection)."""
        data = await self.gql.data(EVENTS, args)
        page: JSON = data["events"]
        return page

    async def events_after(self, position: str, **args: Any) -> list[JSON]:
        """Every event of the global log after `position`, following the cursors to the end
        (pages of 50: a page of events with their data is priced at the largest orders')."""
        args.setdefault("first", 50)
        events: list[JSON] = []
        after: str | None = position
        for _ in range(1000):
            page = await self.events_page(after=after, **args)
            events.extend(edge["node"] for edge in page["edges"])
            if not page["pageInfo"]["hasNextPage"]:
                return events
            after = page["pageInfo"]["endCursor"]
        raise AssertionError("events paging did not end within 1000 pages")

    async def marker(self) -> str:
        """The current end of the global log: the position of a freshly placed order's event."""
        result = await self.place(new_id("marker"))
        assert result["__typename"] == "CommandAccepted", result
        position: str = result["position"]
        return position


def accepted(result: JSON, version: int | None = None) -> JSON:
    """Assert a CommandAccepted (at `version` if given) and return it."""
    assert result["__typename"] == "CommandAccepted", f"expected CommandAccepted, got {result}"
    if version is not None:
        assert result["version"] == version, result
    return result


def refused(result: JSON, typename: str, **fields: Any) -> JSON:
    """Assert a typed command error with the given fields and return it."""
    assert result["__typename"] == typename, f"expected {typename}, got {result}"
    for name, value in fields.items():
        assert result[name] == value, f"{name}: expected {value!r}, got {result}"
    return result
