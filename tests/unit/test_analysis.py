"""The document analysis: one bounded pass, refusals with codes, costs in bytes that follow the
coerced variables, and the caches and variables' budgets around it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from graphql import DocumentNode, GraphQLSchema, OperationDefinitionNode, get_introspection_query

from api.graphql.analysis import Analysis, Refused, analyse_document
from api.graphql.cost import FIELD_BYTES, LIGHT_FIELD_BYTES, MAX_CORRELATION_ID, MAX_EVENT_PAGE
from api.graphql.document_cache import DocumentCache, weight_of
from api.graphql.extensions import document_cache
from api.graphql.schema import build_schema
from api.graphql.schema.arguments import MAX_EVENT_PAGE as RESOLVER_EVENT_PAGE
from api.graphql.variables import variables_error
from api.http.limits import QueryLimits
from api.http.request_record import MAX_CORRELATION_ID as RECORD_CORRELATION_ID

LIMITS = QueryLimits()
SCHEMA: GraphQLSchema = build_schema()._schema


def _parse(query: str) -> DocumentNode:
    from graphql import parse

    return parse(query, max_tokens=LIMITS.max_tokens)


def analyse(
    query: str, variables: dict[str, Any] | None = None, limits: QueryLimits = LIMITS
) -> Analysis:
    document = _parse(query)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return analyse_document(SCHEMA, document, operations[0], variables or {}, limits)


def refusal(query: str, variables: dict[str, Any] | None = None) -> Refused:
    with pytest.raises(Refused) as refused:
        analyse(query, variables)
    return refused.value


def bomb(levels: int) -> str:
    fragments = " ".join(
        f"fragment F{i} on Order {{ id ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    last = f"fragment F{levels} on Order {{ id }}"
    return f"{{orders(first:1){{edges{{node{{...F0}}}}}}}} {fragments} {last}"


def chain(length: int) -> str:
    fragments = " ".join(f"fragment F{i} on Order {{ id ...F{i + 1} }}" for i in range(length))
    last = f"fragment F{length} on Order {{ id }}"
    return f"{{orders(first:1){{edges{{node{{...F0}}}}}}}} {fragments} {last}"


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_the_constants_copied_from_other_modules_agree() -> None:
    assert MAX_EVENT_PAGE == RESOLVER_EVENT_PAGE
    assert MAX_CORRELATION_ID == RECORD_CORRELATION_ID


def test_a_fragment_bomb_is_refused_by_the_field_budget_in_linear_time() -> None:
    started = time.perf_counter()
    refused = refusal(bomb(22))
    # Generous: the expanded document has 4 million fields; the pass walks 70 nodes.
    assert time.perf_counter() - started < 1.0
    assert (refused.code, refused.reason) == ("QUERY_TOO_COMPLEX", "fields")


def test_a_small_fragment_fan_out_counts_every_spread() -> None:
    measured = analyse(bomb(5))
    # 2^6 - 1 `id` under the fragments, plus orders, edges and node.
    assert measured.fields == 63 + 3


def test_an_unused_fragment_bomb_counts_too() -> None:
    document = "{ __typename } " + bomb(22).split(" ", 1)[1]
    assert refusal(document).reason == "fields"


def test_a_chain_of_400_fragments_is_refused_not_a_recursion_error() -> None:
    refused = refusal(chain(400))
    assert (refused.code, refused.reason) == ("QUERY_TOO_COMPLEX", "nesting")


def test_a_fragment_cycle_is_a_validation_error() -> None:
    refused = refusal("{ orders { edges { node { ...A } } } } fragment A on Order { id ...A }")
    assert refused.code == "GRAPHQL_VALIDATION_FAILED"


def test_a_thousand_and_one_typenames_are_refused_with_a_code() -> None:
    refused = refusal("{" + " __typename" * 1001 + " }")
    assert (refused.code, refused.reason) == ("QUERY_TOO_COMPLEX", "fields")


def test_depth_and_aliases_count_through_fragments() -> None:
    deep = "query { events { edges { node { ...E } } } } fragment E on Event { id }"
    assert analyse(deep).depth == 3
    aliased = "{ ...Q ...Q } fragment Q on Query { " + " ".join(
        f"a{i}: __typename" for i in range(16)
    )
    assert refusal(aliased + " }").reason == "aliases"


HISTORY = 'query($n: Int) { orderEvents(id: "o-1", first: $n) { data } }'


@pytest.mark.parametrize("value", [1000, 1000.0, "1000", None, 10**30, 2**31])
def test_a_page_size_is_priced_as_graphql_coerces_it_or_at_the_resolvers_limit(
    value: object,
) -> None:
    literal = analyse('{ orderEvents(id: "o-1", first: 1000) { data } }', limits=_unbounded())
    measured = analyse(HISTORY, {"n": value}, limits=_unbounded())
    assert measured.cost == literal.cost


def test_a_negative_page_costs_nothing_and_an_absent_one_its_default() -> None:
    empty = analyse(HISTORY, {"n": -5})
    absent = analyse(HISTORY, {})
    twenty = analyse(HISTORY, {"n": 100})
    assert empty.cost < 100
    assert absent.cost == twenty.cost


def test_an_orders_events_are_one_heavy_order_placed_and_light_events() -> None:
    heavy, light = FIELD_BYTES["Event.data"], LIGHT_FIELD_BYTES["Event.data"]
    stream = analyse('{ orderEvents(id: "o-1", first: 1000) { data } }')
    assert heavy + 999 * light < stream.cost < heavy + 999 * (light + 20) + 100
    history = analyse('{ order(id: "o-1") { history(first: 1) { data } } }')
    assert heavy < history.cost < heavy + 200
    # The global log can hold an OrderPlaced in every event: the contract's default page fits,
    # a page of 1,000 does not.
    page = analyse("{ events(first: 100) { edges { node { data } } } }")
    assert 100 * heavy < page.cost < LIMITS.max_cost
    log = refusal("{ events(first: 1000) { edges { node { data } } } }")
    assert log.reason == "cost"


def test_json_leaves_are_priced_by_their_bound() -> None:
    # The issue's attack: 30 aliases of one order page's first event data.
    attack = "query { " + " ".join(
        f"a{i}: orders(status: PENDING, first: 100) {{ edges {{ node {{ history(first: 1) "
        "{ data } } } }"
        for i in range(30)
    )
    refused = refusal(attack + " }")
    assert refused.reason == "cost"
    assert f"{30 * 100 * FIELD_BYTES['Event.data']}"[:3] in refused.message


def test_the_introspection_query_of_graphiql_is_within_budget() -> None:
    measured = analyse(get_introspection_query(descriptions=True))
    assert measured.cost < LIMITS.max_cost


def test_a_dashboard_page_is_within_budget() -> None:
    query = """query($first: Int) { orders(first: $first) { edges { cursor node { id status total
        items { productId name price qty } } } pageInfo { hasNextPage endCursor } } }"""
    assert analyse(query, {"first": 50}).cost < LIMITS.max_cost


def _unbounded() -> QueryLimits:
    return QueryLimits(max_cost=10**15)


def test_the_document_cache_is_bounded_by_bytes() -> None:
    cache = DocumentCache(max_bytes=2_000_000)
    texts = ["{" + f" a{n}" * 1000 + " }" for n in range(20)]
    for text in texts:
        cache.put(text, _parse(text))
    assert cache.bytes <= cache.max_bytes
    assert 0 < len(cache) < len(texts)
    assert cache.get(texts[-1]) is not None, "the newest stays"
    assert cache.get(texts[0]) is None, "the oldest went first"
    assert weight_of(texts[0], _parse(texts[0])) > 600 * 1000


def test_a_document_over_the_whole_budget_is_never_held() -> None:
    cache = DocumentCache(max_bytes=1000)
    cache.put("{ a b c d e f }", _parse("{ a b c d e f }"))
    assert len(cache) == 0
    assert cache.bytes == 0


def test_the_shared_cache_follows_the_limits() -> None:
    assert document_cache(LIMITS.cache_bytes).max_bytes == LIMITS.cache_bytes


@pytest.mark.parametrize(
    ("variables", "refused"),
    [
        ({"x": [[[[1]]]]}, False),
        ({"input": {"items": [{"name": "n" * 200}] * 100}}, False),
        ({"x": "x" * 300_000}, True),
        ({"x": list(range(200_000))}, True),
        ({"x": [0] * 100_000, "y": [1] * 100_000}, True),
        ({"x": _nested(300)}, True),
        ({"x": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {}}}}}}}}}}}}, False),
    ],
)
def test_variables_over_their_budgets_are_refused(variables: dict[str, Any], refused: bool) -> None:
    error = variables_error(variables, LIMITS.max_variables_bytes, LIMITS.max_variables_depth)
    assert (error is not None) == refused
    if error is not None:
        assert (error.extensions or {})["code"] == "BAD_USER_INPUT"
