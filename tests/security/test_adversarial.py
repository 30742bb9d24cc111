"""Adversarial documents, generated: built to make the server work as hard as a document up to the
size limit can (fragment fan-out and chains, nested lists, aliases, page sizes in every numeric
form, the heaviest JSON leaves, inline and named fragments, directives), sent over HTTP and both
websocket protocols to the real server holding heavy data (orders of 100 items with the longest
names). Each must be answered or refused within `ANSWER_BOUND`, the server's memory must stay
under `RSS_BOUND`, and another customer's small query, asked over and over meanwhile, must keep
answering within `BYSTANDER_BOUND`.

The generator is seeded (`ADVERSARIAL_SEED`, default fixed) and runs `ADVERSARIAL_EXAMPLES`
documents (default sized for CI, under a minute): set it higher to run longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from api.http.limits import QueryLimits
from tests.e2e.gql import JSON, GraphQLClient, Orders, new_id
from tests.e2e.ws import GraphQLWebSocket, Protocol
from tests.security.live import LogWatch, secured
from tests.security.test_cost_limit import rss_bytes, seed_heavy_orders
from tests.support.live_server import LiveServer

__all__ = ["secured"]

EXAMPLES = int(os.environ.get("ADVERSARIAL_EXAMPLES", "120"))
SEED = int(os.environ.get("ADVERSARIAL_SEED", "1717"))
ANSWER_BOUND = 5.0
"""Seconds within which every generated document is answered or refused."""
BYSTANDER_BOUND = 3.0
"""Seconds within which the other customer's small query answers, throughout (about 0.5 s on
an idle machine; the bound leaves room for a CI runner shared with other jobs)."""
RSS_BOUND = 512 * 2**20
"""The server's resident memory, at every sample: it started near 100 MB; the response cap is
16 MiB, an accepted answer's cost at most 16 MiB less 256 KiB."""
HEAVY_ORDERS = 12
CACHE_ATTACK_DOCUMENTS = int(os.environ.get("ADVERSARIAL_CACHE_DOCUMENTS", "150"))
"""Distinct dense documents sent: 150 at about 2.4 MB each would hold 360 MB unbounded."""
LIMITS = QueryLimits()
TRANSPORTS: tuple[str, ...] = ("http", "graphql-transport-ws", "graphql-ws")
ALLOWED_CODES = {
    "QUERY_TOO_COMPLEX",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "BAD_USER_INPUT",
    "FORBIDDEN",
}
"""Every error an adversarial document may get: a refusal with its code, never an internal error,
an outage or no code at all."""

PAGE_FORMS: tuple[object, ...] = (
    1000,
    1000.0,
    "1000",
    10**18,
    1e30,
    -1,
    None,
    100,
    5,
    1,
    True,
    2.5,
)
"""Every numeric form a page-size variable can take."""


@dataclass
class Document:
    """One generated request."""

    kind: str
    query: str
    variables: dict[str, Any] = field(default_factory=dict)


class Generator:
    """Documents built to maximise work, from a seeded random source."""

    def __init__(self, rng: random.Random, order_ids: list[str]) -> None:
        self.rng = rng
        self.order_ids = order_ids

    def page(self) -> object:
        # Half the pages small, so that many documents run (on the heaviest data) rather than
        # being refused.
        if self.rng.random() < 0.5:
            return self.rng.choice((1, 2, 5, 20))
        return self.rng.choice(PAGE_FORMS)

    def leaves(self) -> str:
        """The heaviest selections on an order."""
        choices = [
            "id status total",
            "items { productId name price qty }",
            "history(first: $h) { data metadata }",
            "history { type data }",
            "... on Order { items { name } }",
            "history(first: $h) @include(if: $yes) { data }",
            "items @skip(if: $no) { name }",
            "__typename",
        ]
        return " ".join(self.rng.sample(choices, self.rng.randint(1, len(choices))))

    def orders(self, inner: str, alias: str = "") -> str:
        prefix = f"{alias}: " if alias else ""
        status = self.rng.choice(["", "status: PENDING, "])
        return f"{prefix}orders({status}first: $n) {{ edges {{ cursor node {{ {inner} }} }} }}"

    def wrap(self, body: str, extra: str = "") -> str:
        # Only the variables used: an unused one fails validation, and these must run.
        declared = {"$n": "Int", "$h": "Int", "$yes": "Boolean = true", "$no": "Boolean = false"}
        text = body + extra
        used = ", ".join(f"{name}: {kind}" for name, kind in declared.items() if name in text)
        return f"query Attack{f'({used})' if used else ''} {{ {body} }} {extra}"

    def variables(self) -> dict[str, Any]:
        return {"n": self.page(), "h": self.page()}

    def used(self, document: Document) -> Document:
        """Without the variables the document does not declare."""
        document.variables = {
            name: value
            for name, value in document.variables.items()
            if f"${name}:" in document.query
        }
        return document

    def fan_out(self) -> Document:
        levels = self.rng.randint(3, 30)
        fan = self.rng.randint(2, 4)
        fragments = " ".join(
            f"fragment F{i} on Order {{ id {' '.join(f'...F{i + 1}' for _ in range(fan))} }}"
            for i in range(levels)
        )
        extra = f"{fragments} fragment F{levels} on Order {{ {self.leaves()} }}"
        return Document("fan-out", self.wrap(self.orders("...F0"), extra), self.variables())

    def chain(self) -> Document:
        length = self.rng.choice([10, 60, 70, 400, 900])
        fragments = " ".join(f"fragment C{i} on Order {{ id ...C{i + 1} }}" for i in range(length))
        extra = f"{fragments} fragment C{length} on Order {{ {self.leaves()} }}"
        return Document("chain", self.wrap(self.orders("...C0"), extra), self.variables())

    def aliases(self) -> Document:
        count = self.rng.randint(2, 60)
        body = " ".join(self.orders(self.leaves(), f"a{i}") for i in range(count))
        return Document("aliases", self.wrap(body), self.variables())

    def nested_lists(self) -> Document:
        order_id = self.rng.choice(self.order_ids)
        body = (
            f'one: order(id: "{order_id}") {{ history(first: $h) {{ data metadata }} '
            "items { name } } "
            f'events: orderEvents(id: "{order_id}", first: $n) {{ data metadata }} '
            "log: events(first: $n) { edges { node { data metadata } } pageInfo { endCursor } } "
            + self.orders(self.leaves())
        )
        return Document("nested-lists", self.wrap(body), self.variables())

    def inline(self) -> Document:
        depth = self.rng.randint(1, 80)
        inner = "... on Order { " * depth + self.leaves() + " }" * depth
        return Document("inline", self.wrap(self.orders(inner)), self.variables())

    def wide(self) -> Document:
        count = self.rng.choice([500, 999, 1001, 3000, 3999])
        field_name = self.rng.choice(["__typename", "id", "a: __typename"])
        body = self.orders(" ".join([field_name] * count))
        return Document("wide", self.wrap(body), self.variables())

    def deep(self) -> Document:
        depth = self.rng.choice([12, 200, 1500])
        body = "events { " + "edges { node { " * depth + "id" + " } }" * depth + " }"
        return Document("deep", self.wrap(body), self.variables())

    def padded(self) -> Document:
        """Up to the query-length limit, mostly comments."""
        document = self.fan_out()
        room = LIMITS.max_query_length - len(document.query) + self.rng.choice([-10, 10])
        document.query += "\n#" + "x" * max(room - 2, 0)
        return Document("padded", document.query, document.variables)

    def variables_bomb(self) -> Document:
        nested: Any = 1
        for _ in range(self.rng.choice([20, 250])):
            nested = [nested]
        size = self.rng.choice([10, 300_000])
        query = "query($x: [Int], $s: String) { __typename }"
        return Document("variables", query, {"x": nested, "s": "s" * size})

    def introspection(self) -> Document:
        depth = self.rng.randint(1, 12)
        inner = "name " + "fields { name type { " * depth + "name" + " } }" * depth
        return Document("introspection", f"{{ __schema {{ types {{ {inner} }} }} }}")

    def runnable(self) -> Document:
        """As heavy as the budget allows: these run, on the heaviest data."""
        small = (1, 2, 5)
        count = self.rng.randint(1, 4)
        fan = self.rng.randint(1, 3)
        node = (
            "items { productId name price qty } history(first: $h) { data metadata } "
            + " ".join(["...Heavy"] * fan)
        )
        body = " ".join(self.orders(node, f"r{i}") for i in range(count))
        extra = (
            "fragment Heavy on Order { id total ... on Order { items @include(if: $yes) "
            "{ name } } }"
        )
        variables = {"n": self.rng.choice(small), "h": self.rng.choice(small)}
        return Document("runnable", self.wrap(body, extra), variables)

    def next(self) -> Document:
        makers: list[Callable[[], Document]] = [
            self.runnable,
            self.runnable,
            self.runnable,
            self.fan_out,
            self.chain,
            self.aliases,
            self.nested_lists,
            self.inline,
            self.wide,
            self.deep,
            self.padded,
            self.variables_bomb,
            self.introspection,
        ]
        return self.used(self.rng.choice(makers)())


@contextlib.asynccontextmanager
async def _socket(url: str, token: str, protocol: Protocol) -> AsyncIterator[GraphQLWebSocket]:
    # No client-side message limit: an accepted answer may be several MB.
    async with connect(
        url, subprotocols=[Subprotocol(protocol)], proxy=None, open_timeout=10, max_size=None
    ) as ws:
        client = GraphQLWebSocket(ws, protocol)
        try:
            await client._init(token, 10.0)
            yield client
        finally:
            await client.close()


def _errors_of(payload: Any) -> list[JSON]:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        errors = payload.get("errors")
        if errors is not None:
            return list(errors)
        if "message" in payload:
            return [payload]
    return []


async def _send(
    document: Document, transport: str, server: LiveServer, token: str, http: httpx.AsyncClient
) -> list[JSON]:
    """The errors of the answer (empty when it answered data)."""
    if transport == "http":
        response = await http.post(
            "/graphql",
            content=orjson.dumps({"query": document.query, "variables": document.variables}),
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        assert response.status_code in (200, 400, 413), response.text[:300]
        body = response.json()
        return list(body.get("errors") or [])
    protocol: Protocol = "graphql-transport-ws" if transport != "graphql-ws" else "graphql-ws"
    async with _socket(server.ws_url, token, protocol) as socket:
        sub = await socket.subscribe(document.query, document.variables)
        message = await sub.message(within=ANSWER_BOUND)
        if message.kind == "closed":
            # The transport's refusals: a message over its limit (1009), and on
            # graphql-transport-ws a document that does not parse (4400, as that protocol says).
            assert message.payload in (1009, 4400), message
            return [{"message": "closed", "extensions": {"code": "GRAPHQL_PARSE_FAILED"}}]
        return _errors_of(message.payload)


class Bystander:
    """Another customer asking a small query over and over; the slowest answer is kept."""

    def __init__(self, gql: GraphQLClient) -> None:
        self.gql = gql
        self.slowest = 0.0
        self.answers = 0

    async def run(self, stop: asyncio.Event) -> None:
        query = "{ orders(first: 1) { edges { node { id status } } } }"
        while not stop.is_set():
            started = time.perf_counter()
            async with asyncio.timeout(BYSTANDER_BOUND * 3):
                data = await self.gql.data(query)
            self.slowest = max(self.slowest, time.perf_counter() - started)
            self.answers += 1
            assert len(data["orders"]["edges"]) == 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await stop.wait()


async def _heavy_customer(secured: LiveServer) -> tuple[str, list[str]]:
    async with httpx.AsyncClient(base_url=secured.url, timeout=60.0, trust_env=False) as http:
        staff = GraphQLClient(http, secured.token(sub="staff-1", role="staff"))
        customer = new_id("attacker")
        ids = await seed_heavy_orders(Orders(staff), customer, HEAVY_ORDERS)
        bystander = new_id("bystander")
        await seed_heavy_orders(Orders(staff), bystander, 1)
    return secured.token(sub=customer, role="customer"), [
        *ids,
        secured.token(sub=bystander, role="customer"),
    ]


@pytest.fixture(scope="module")
def seeded(secured: LiveServer) -> tuple[str, list[str], str]:
    """The attacker's token and heavy orders, and the bystander's token."""
    token, rest = asyncio.run(_heavy_customer(secured))
    return token, rest[:-1], rest[-1]


async def test_generated_adversarial_documents_are_answered_in_bounded_time_and_memory(
    secured: LiveServer, seeded: tuple[str, list[str], str]
) -> None:
    token, order_ids, bystander_token = seeded
    pid = secured.process.pid
    assert pid is not None
    log = LogWatch(secured)
    generator = Generator(random.Random(SEED), order_ids)
    stop = asyncio.Event()
    slowest = 0.0
    peak = rss_bytes(pid)
    kinds: dict[str, int] = {}
    answered = 0
    async with (
        httpx.AsyncClient(base_url=secured.url, timeout=30.0, trust_env=False) as http,
        httpx.AsyncClient(base_url=secured.url, timeout=30.0, trust_env=False) as other,
    ):
        bystander = Bystander(GraphQLClient(other, bystander_token))
        watcher = asyncio.create_task(bystander.run(stop))
        try:
            for n in range(EXAMPLES):
                document = generator.next()
                transport = TRANSPORTS[n % len(TRANSPORTS)]
                started = time.perf_counter()
                async with asyncio.timeout(ANSWER_BOUND):
                    errors = await _send(document, transport, secured, token, http)
                elapsed = time.perf_counter() - started
                slowest = max(slowest, elapsed)
                codes = {(e.get("extensions") or {}).get("code") for e in errors}
                assert codes <= ALLOWED_CODES, (document.kind, transport, errors[:2])
                kinds[document.kind] = kinds.get(document.kind, 0) + 1
                answered += not errors
                peak = max(peak, rss_bytes(pid))
                assert peak < RSS_BOUND, (document.kind, transport, peak)
                assert not watcher.done(), "the bystander stopped"
        finally:
            stop.set()
            await watcher
    print(  # the figures of a long run, for the README (pytest -s)
        f"adversarial: examples={EXAMPLES} seed={SEED} slowest_answer={slowest:.2f}s "
        f"peak_rss={peak / 2**20:.0f}MiB bystander_slowest={bystander.slowest:.2f}s "
        f"bystander_answers={bystander.answers} answered_with_data={answered} kinds={kinds}"
    )
    text = log.text()
    assert "Traceback" not in text
    assert "maximum recursion" not in text
    assert bystander.answers > 0
    assert bystander.slowest < BYSTANDER_BOUND, bystander.slowest


async def test_distinct_documents_keep_the_servers_memory_within_the_cache_budget(
    secured: LiveServer,
) -> None:
    """Dense documents (4,000 tokens under 8,192 characters), each new: the parser cache keeps
    what its byte budget allows, and the documents it lets go are freed at once. 700 of them
    took RSS from 78 MB to 1.24 GB when the cache was bounded by entries."""
    pid = secured.process.pid
    assert pid is not None
    token = secured.token(sub=new_id("cache"), role="customer")
    async with httpx.AsyncClient(base_url=secured.url, timeout=30.0, trust_env=False) as http:
        gql = GraphQLClient(http, token)
        before = rss_bytes(pid)
        for n in range(CACHE_ATTACK_DOCUMENTS):
            query = "{" + f"b{n} " + " a" * (LIMITS.max_tokens - 10) + " }"
            assert len(query) <= LIMITS.max_cached_document
            result = await gql.execute(query)
            assert result.get("errors"), result
        grown = rss_bytes(pid) - before
    # The cache's budget, plus room for the allocator's own slack.
    assert grown < LIMITS.cache_bytes + 64 * 2**20, grown / 2**20
