"""The authorization matrix: every operation of schema.graphql x {anonymous, the customer who
owns the order, another customer, staff}, with the outcome each cell must have (CONTRACT
"Access", api/graphql/permissions.py), run against the real server over HTTP and websockets.

Queries and mutations run over HTTP and graphql-transport-ws (the legacy graphql-ws protocol
runs subscriptions only, and says so), subscriptions over both websocket protocols. A new
operation in schema.graphql without a row here fails `test_every_operation_has_a_row`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from graphql import build_schema

from tests.e2e.gql import JSON, GraphQLClient, Orders, accepted, error_codes, item, new_id
from tests.e2e.ws import Protocol, Subscription, WsMessage, WsRejected, graphql_ws
from tests.security.live import client, secured, staff, staff_orders
from tests.support.live_server import LiveServer

__all__ = ["client", "secured", "staff", "staff_orders"]

SDL_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"

Actor = Literal["anonymous", "owner", "other", "staff"]
ACTORS: tuple[Actor, ...] = ("anonymous", "owner", "other", "staff")

ALLOWED = "allowed"
OWN = "own"
"""Allowed, and the answer holds the caller's own orders only."""
SILENT = "silent"
"""Allowed, and silent while another customer's order changes (a live feed of one's own)."""
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"

HTTP = "http"
TRANSPORT_WS: Protocol = "graphql-transport-ws"
LEGACY_WS: Protocol = "graphql-ws"


def _cells(anonymous: str, owner: str, other: str, staff: str) -> dict[Actor, str]:
    return {"anonymous": anonymous, "owner": owner, "other": other, "staff": staff}


STAFF_ONLY = _cells(UNAUTHENTICATED, FORBIDDEN, FORBIDDEN, ALLOWED)
OWNER_OR_STAFF = _cells(UNAUTHENTICATED, ALLOWED, FORBIDDEN, ALLOWED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One row: an operation, the document that exercises it, the outcome per caller."""

    operation: str
    document: str
    expected: dict[Actor, str]
    variant: str = ""
    paid: bool = False
    """The order is paid before the cell runs (shipOrder needs it)."""
    needs_change: bool = False
    """A live feed that only speaks after a change: the cell makes changes until it does."""
    transports: tuple[str, ...] = field(default=(HTTP, TRANSPORT_WS))

    @property
    def field(self) -> str:
        """The root field the document selects."""
        return self.operation.split(".", 1)[1]

    @property
    def id(self) -> str:
        """The row's name in test ids."""
        return self.operation + (f"[{self.variant}]" if self.variant else "")


SUBSCRIPTION = (TRANSPORT_WS, LEGACY_WS)
ORDER_FIELDS = "id customerId"
RESULT = "__typename ... on CommandError { code message }"

CASES: tuple[Case, ...] = (
    Case(
        operation="Query.order",
        document=f"query($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} }} }}",
        expected=OWNER_OR_STAFF,
    ),
    Case(
        operation="Query.orders",
        variant="own customerId",
        document=f"""query($owner: ID) {{ orders(customerId: $owner, first: 100) {{
            edges {{ node {{ {ORDER_FIELDS} }} }} }} }}""",
        expected=OWNER_OR_STAFF,
    ),
    Case(
        operation="Query.orders",
        variant="no filter",
        document=f"{{ orders(first: 100) {{ edges {{ node {{ {ORDER_FIELDS} }} }} }} }}",
        expected=_cells(UNAUTHENTICATED, OWN, OWN, ALLOWED),
    ),
    Case(
        operation="Query.dashboardStats",
        document="{ dashboardStats { totalOrders } }",
        expected=STAFF_ONLY,
    ),
    Case(operation="Query.projections", document="{ projections { name } }", expected=STAFF_ONLY),
    Case(
        operation="Query.orderAt",
        document="query($id: ID!) { orderAt(id: $id, version: 1) { id customerId } }",
        expected=OWNER_OR_STAFF,
    ),
    Case(
        operation="Query.orderEvents",
        document="query($id: ID!) { orderEvents(id: $id) { id type } }",
        expected=OWNER_OR_STAFF,
    ),
    Case(
        operation="Query.events",
        document="{ events(first: 1) { edges { cursor } } }",
        expected=STAFF_ONLY,
    ),
    Case(
        operation="Mutation.placeOrder",
        document=f"""mutation($owner: ID!, $newId: ID) {{ placeOrder(input: {{
            orderId: $newId, customerId: $owner,
            items: [{{productId: "p-1", name: "Pen", price: "1.00", qty: 1}}]}}) {{
            {RESULT} }} }}""",
        expected=_cells(UNAUTHENTICATED, ALLOWED, FORBIDDEN, ALLOWED),
    ),
    Case(
        operation="Mutation.takePayment",
        document=f"""mutation($id: ID!) {{ takePayment(input: {{orderId: $id, amount: "15.00",
            method: "card", transactionId: "tx-1"}}) {{ {RESULT} }} }}""",
        expected=STAFF_ONLY,
    ),
    Case(
        operation="Mutation.shipOrder",
        document=f"""mutation($id: ID!) {{ shipOrder(input: {{orderId: $id, trackingId: "t-1",
            carrier: "DHL"}}) {{ {RESULT} }} }}""",
        expected=STAFF_ONLY,
        paid=True,
    ),
    Case(
        operation="Mutation.cancelOrder",
        document=f"""mutation($id: ID!) {{ cancelOrder(input: {{orderId: $id, reason: "no"}}) {{
            {RESULT} }} }}""",
        expected=OWNER_OR_STAFF,
    ),
    Case(
        operation="Mutation.addItem",
        document=f"""mutation($id: ID!) {{ addItem(input: {{orderId: $id, item: {{
            productId: "p-9", name: "Ink", price: "2.00", qty: 1}}}}) {{ {RESULT} }} }}""",
        expected=STAFF_ONLY,
    ),
    Case(
        operation="Mutation.removeItem",
        document=f"""mutation($id: ID!) {{ removeItem(input: {{orderId: $id, productId: "p-2"}}) {{
            {RESULT} }} }}""",
        expected=STAFF_ONLY,
    ),
    Case(
        operation="Subscription.orderUpdated",
        document=f"subscription($id: ID!) {{ orderUpdated(id: $id) {{ {ORDER_FIELDS} }} }}",
        expected=OWNER_OR_STAFF,
        transports=SUBSCRIPTION,
    ),
    Case(
        operation="Subscription.ordersUpdated",
        document=f"""subscription($owner: ID) {{ ordersUpdated(customerId: $owner) {{
            {ORDER_FIELDS} }} }}""",
        expected=OWNER_OR_STAFF,
        needs_change=True,
        transports=SUBSCRIPTION,
    ),
    Case(
        operation="Subscription.ordersUpdated",
        variant="no filter",
        document=f"subscription {{ ordersUpdated {{ {ORDER_FIELDS} }} }}",
        expected=_cells(UNAUTHENTICATED, ALLOWED, SILENT, ALLOWED),
        needs_change=True,
        transports=SUBSCRIPTION,
    ),
    Case(
        operation="Subscription.dashboardStats",
        document="subscription { dashboardStats { totalOrders } }",
        expected=STAFF_ONLY,
        transports=SUBSCRIPTION,
    ),
    Case(
        operation="Subscription.orderEvents",
        document="subscription($id: ID!) { orderEvents(id: $id) { id type } }",
        expected=OWNER_OR_STAFF,
        transports=SUBSCRIPTION,
    ),
    Case(
        operation="Subscription.events",
        document="subscription { events { id type } }",
        expected=STAFF_ONLY,
        transports=SUBSCRIPTION,
    ),
)

CELLS = [
    pytest.param(case, actor, transport, id=f"{case.id}-{actor}-{transport}")
    for case in CASES
    for actor, transport in itertools.product(ACTORS, case.transports)
]


def test_every_operation_has_a_row() -> None:
    schema = build_schema(SDL_FILE.read_text(encoding="utf-8"))
    operations = set()
    for root in (schema.query_type, schema.mutation_type, schema.subscription_type):
        assert root is not None
        operations |= {f"{root.name}.{name}" for name in root.fields}
    covered = {case.operation for case in CASES}
    assert operations - covered == set(), "operations of schema.graphql without a matrix row"
    assert covered - operations == set(), "matrix rows for operations the schema lacks"
    for case in CASES:
        assert set(case.expected) == set(ACTORS), case.id


@dataclass(slots=True)
class World:
    """The callers, and an order of the owner's made fresh for each cell."""

    owner: str
    other: str
    tokens: dict[Actor, str | None]
    order_id: str = ""


@pytest.fixture
async def world(secured: LiveServer, staff_orders: Orders) -> World:
    owner, other = new_id("owner"), new_id("other")
    accepted(await staff_orders.place(new_id("o"), customer_id=other))
    return World(
        owner=owner,
        other=other,
        tokens={
            "anonymous": None,
            "owner": secured.token(sub=owner, role="customer"),
            "other": secured.token(sub=other, role="customer"),
            "staff": secured.token(sub="staff-1", role="staff"),
        },
    )


def _observed(result: JSON, case: Case) -> tuple[str, Any]:
    codes = error_codes(result)
    if codes:
        return (str(codes[0]) if len(set(codes)) == 1 else str(codes)), None
    value = (result.get("data") or {}).get(case.field)
    if value is None:
        return "null", None
    if isinstance(value, dict) and value.get("__typename", "CommandAccepted") != "CommandAccepted":
        return str(value["__typename"]), value
    return ALLOWED, value


def _errors_of(message: WsMessage) -> JSON:
    payload = message.payload
    errors = payload if isinstance(payload, list) else payload.get("errors", [payload])
    return {"errors": errors}


async def _first_message(
    sub: Subscription, case: Case, staff_orders: Orders, world: World
) -> WsMessage | None:
    """The subscription's first message; None when a live feed stays silent through 10 changes
    of the owner's order."""
    if not case.needs_change:
        return await sub.message()
    for attempt in range(10):
        try:
            return await sub.message(within=0.5)
        except AssertionError:
            # The subscription may not listen yet: change the order until a change arrives.
            accepted(await staff_orders.add_item(world.order_id, item(f"change-{attempt}")))
    return None


async def _run(
    case: Case,
    actor: Actor,
    transport: str,
    secured: LiveServer,
    client: httpx.AsyncClient,
    staff_orders: Orders,
    world: World,
) -> tuple[str, Any]:
    variables = {"id": world.order_id, "owner": world.owner, "newId": new_id("o")}
    token = world.tokens[actor]
    if transport == HTTP:
        response = await GraphQLClient(client, token).post(case.document, variables)
        if response.status_code == 401:
            return error_codes(response.json())[0] or "401", None
        return _observed(response.json(), case)
    protocol: Protocol = TRANSPORT_WS if transport == TRANSPORT_WS else LEGACY_WS
    try:
        async with graphql_ws(secured.ws_url, token, protocol) as ws:
            sub = await ws.subscribe(case.document, variables)
            message = await _first_message(sub, case, staff_orders, world)
    except WsRejected as rejected:
        if token is not None:
            raise AssertionError(f"a valid token was refused: {rejected}") from None
        return UNAUTHENTICATED, None
    if message is None:
        return SILENT, None
    if message.kind == "next":
        return _observed(message.payload, case)
    assert message.kind == "error", message
    return _observed(_errors_of(message), case)


@pytest.mark.parametrize(("case", "actor", "transport"), CELLS)
async def test_cell(
    case: Case,
    actor: Actor,
    transport: str,
    secured: LiveServer,
    client: httpx.AsyncClient,
    staff_orders: Orders,
    world: World,
) -> None:
    world.order_id = new_id("o")
    two_lines = [item("p-1", price="10.00"), item("p-2", price="5.00")]
    accepted(await staff_orders.place(world.order_id, customer_id=world.owner, items=two_lines))
    version = 1
    if case.paid:
        accepted(await staff_orders.pay(world.order_id, amount="15.00"))
        version = 2
    # The read model follows the log: wait until it shows the order, so read cells see it.
    view = await staff_orders.gql.data(
        "query($id: ID!, $v: Int) { order(id: $id, minVersion: $v) { version } }",
        {"id": world.order_id, "v": version},
    )
    assert view["order"] == {"version": version}
    observed, value = await _run(case, actor, transport, secured, client, staff_orders, world)
    expected = case.expected[actor]
    if expected == OWN:
        assert observed == ALLOWED, f"{case.id} as {actor}: {observed}"
        sub = world.owner if actor == "owner" else world.other
        owners = {edge["node"]["customerId"] for edge in value["edges"]}
        assert owners == {sub}, f"{case.id} as {actor} saw others' orders: {owners}"
        ids = {edge["node"]["id"] for edge in value["edges"]}
        assert (world.order_id in ids) == (actor == "owner")
    else:
        assert observed == expected, f"{case.id} as {actor} over {transport}: {observed}"
    if expected == ALLOWED and isinstance(value, dict) and "customerId" in value:
        assert value["customerId"] == world.owner
