"""The schema extensions every served schema uses: caches, limits and error masking.

Public and baseline schemas share this list, so a benchmark compares like with like.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from graphql import GraphQLError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

logger = logging.getLogger(__name__)

CACHE_SIZE = 512
"""Parsed and validated documents kept: real clients send a few dozen distinct documents, and a
bound keeps clients that send unique ones from growing memory forever."""
MAX_DEPTH = 10
MAX_TOKENS = 4000
MAX_ALIASES = 30
INTERNAL_ERROR_CODE = "INTERNAL_SERVER_ERROR"


def is_unexpected(error: GraphQLError) -> bool:
    """Errors with an original exception that is not a GraphQL error are bugs or outages: their
    text may leak internals. Auth, bad-input and validation errors are meant for the client."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class MaskUnexpectedErrors(MaskErrors):
    """Masks unexpected errors as "Unexpected error." (code INTERNAL_SERVER_ERROR) and logs them
    in full server-side."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message="Unexpected error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        """The masked error; the original goes to the server log with its traceback."""
        original = error.original_error
        logger.error(
            "event=unexpected_error path=%s error=%r",
            ".".join(str(p) for p in error.path or ()),
            original,
            exc_info=(type(original), original, original.__traceback__) if original else None,
        )
        masked = super().anonymise_error(error)
        masked.extensions = {"code": INTERNAL_ERROR_CODE}
        return masked


def schema_extensions() -> Sequence[Callable[[], SchemaExtension]]:
    """Factories (strawberry builds fresh extension instances per operation)."""
    return (
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        MaskUnexpectedErrors,
    )
