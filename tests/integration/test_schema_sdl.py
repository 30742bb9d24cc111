"""schema.graphql is exported from the code: regenerate with `orders schema > schema.graphql`."""

from __future__ import annotations

from pathlib import Path

from strawberry.printer import print_schema

from api.graphql.schema import build_schema

SDL_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_schema_file_equals_the_schema_the_code_builds() -> None:
    assert SDL_FILE.read_text(encoding="utf-8") == print_schema(build_schema()) + "\n", (
        "schema.graphql drifted: run `orders schema > schema.graphql`"
    )


def test_the_contract_names_are_in_the_schema() -> None:
    sdl = print_schema(build_schema())
    for fragment in (
        "orderAt(",
        "orderEvents(",
        "events(",
        "placeOrder(",
        "union CommandResult = CommandAccepted | ValidationFailed | OrderNotFound | "
        "OrderAlreadyExists | InvalidTransition | ConcurrencyConflict",
        "interface CommandError",
        "scalar DateTime",
        "scalar Decimal",
        "scalar JSON",
        "order: Order!",
        "payload: EventPayload!",
        "union EventPayload = OrderPlacedData | PaymentTakenData | OrderShippedData | "
        "OrderCancelledData | ItemAddedData | ItemRemovedData",
        "hasPreviousPage: Boolean!",
        "startCursor: String",
        "totalCount: Int!",
    ):
        assert fragment in sdl


QUERY = "query { events(first: 1) { pageInfo { hasNextPage } } }"


async def test_validation_is_cached_across_operations() -> None:
    from api.graphql.extensions import DEFAULT_LIMITS, document_cache

    schema = build_schema()
    cache = document_cache(DEFAULT_LIMITS.cache_bytes)
    await schema.execute(QUERY)
    entry = cache.get(QUERY)
    assert entry is not None
    validations = dict(entry.validations)
    await schema.execute(QUERY)
    assert all(entry.validations[rules] is errors for rules, errors in validations.items())
    assert len(entry.analyses) == 1


async def test_documents_beyond_the_limits_are_refused() -> None:
    from api.graphql.extensions import DEFAULT_LIMITS

    max_depth, max_aliases = DEFAULT_LIMITS.max_depth, DEFAULT_LIMITS.max_aliases
    schema = build_schema()
    nesting = max_depth // 2 + 1
    deep = "query { events { " + "edges { node { " * nesting + "id" + " } }" * nesting + " } }"
    result = await schema.execute(deep)
    assert result.errors
    assert any("depth" in error.message for error in result.errors)
    aliases = " ".join(f"a{i}: __typename" for i in range(max_aliases + 1))
    result = await schema.execute("query { " + aliases + " }")
    assert result.errors
    assert "aliases" in result.errors[0].message
