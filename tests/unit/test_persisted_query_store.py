"""The persisted-query store's bounds: only valid documents, each capped, the total capped with
the least recently used going first."""

from __future__ import annotations

import pytest
from graphql import build_schema

from api.graphql.persisted_queries import (
    PersistedQueries,
    PersistedQueryError,
    PersistedQuerySettings,
    sha256_of,
)

SCHEMA = build_schema("type Query { a: Int  b: Int }")


def _extensions(document: str) -> dict[str, object]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256_of(document)}}


def _held(store: PersistedQueries, document: str) -> bool:
    try:
        return store.document(None, _extensions(document)) == document
    except PersistedQueryError as error:
        if error.code != "PERSISTED_QUERY_NOT_FOUND":
            raise
        return False


def test_the_least_recently_used_go_first_past_the_byte_budget() -> None:
    documents = [f"{{ a }} # {n:04d}" for n in range(4)]  # 13 bytes each
    store = PersistedQueries(PersistedQuerySettings(), SCHEMA, max_store_bytes=40)
    for document in documents[:3]:
        assert store.document(document, _extensions(document)) == document
    assert _held(store, documents[0])  # now the most recently used
    store.document(documents[3], _extensions(documents[3]))
    assert len(store) == 3
    assert not _held(store, documents[1])
    assert all(_held(store, document) for document in (documents[0], documents[2], documents[3]))


def test_documents_too_large_or_invalid_run_but_are_not_kept() -> None:
    store = PersistedQueries(PersistedQuerySettings(), SCHEMA, max_document_bytes=20)
    large = "{ a } # " + "x" * 20
    for document in (large, "{ c }", "{ a", "{ a(x: 1) }"):
        assert store.document(document, _extensions(document)) == document
    assert store.document("{ a b }", _extensions("{ a b }")) == "{ a b }"
    assert len(store) == 1
    assert not _held(store, large)


@pytest.mark.parametrize("tokens", [3, 100])
def test_the_token_limit_applies_before_parsing(tokens: int) -> None:
    store = PersistedQueries(PersistedQuerySettings(), SCHEMA, max_tokens=tokens)
    store.document("{ a b }", _extensions("{ a b }"))
    assert len(store) == (tokens >= 4)
