"""The schema extensions every served schema uses: caches, limits and error masking.

Public and baseline schemas share this list, so a benchmark compares like with like.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
    max_aliases,
    query_depth_limiter,
)
from strawberry.types import ExecutionContext

from api.outages import OUTAGES, outage_part, unavailable_of

logger = logging.getLogger(__name__)

CACHE_SIZE = 512
"""Parsed and validated documents kept: real clients send a few dozen distinct documents, and a
bound keeps clients that send unique ones from growing memory forever."""
MAX_DEPTH = 10
MAX_TOKENS = 4000
MAX_ALIASES = 30
INTERNAL_ERROR_CODE = "INTERNAL_SERVER_ERROR"


# The limiters' validation rules are classes. Strawberry's own limiters make a new class per
# instance, i.e. per operation, and the validation cache keys on the rules: every lookup would
# miss. Built once here, the rules are the same objects on every operation and the cache hits.
_DEPTH_RULE = query_depth_limiter.create_validator(MAX_DEPTH, None, None)
_ALIASES_RULE = max_aliases.create_validator(MAX_ALIASES)


class DepthAndAliasLimits(AddValidationRules):
    """Refuses documents deeper than MAX_DEPTH or with more than MAX_ALIASES aliases."""

    def __init__(self) -> None:
        super().__init__([_DEPTH_RULE, _ALIASES_RULE])


def is_unexpected(error: GraphQLError) -> bool:
    """Errors with an original exception that is not a GraphQL error are bugs or outages: their
    text may leak internals. Auth, bad-input and validation errors are meant for the client."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class MaskUnexpectedErrors(MaskErrors):
    """Masks unexpected errors as "Unexpected error." (code INTERNAL_SERVER_ERROR)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message="Unexpected error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        """An outage as the retryable UNAVAILABLE error; anything else masked
        (`OrdersSchema.process_errors` logged the original)."""
        unavailable = unavailable_of(error)
        if unavailable is not None:
            return unavailable
        masked = super().anonymise_error(error)
        masked.extensions = {"code": INTERNAL_ERROR_CODE}
        return masked


class OrdersSchema(strawberry.Schema):
    """A schema that logs unexpected errors in full (before masking hides them from clients) and
    keeps refusals meant for the client (auth, bad input, validation) out of the error log."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log what went wrong unexpectedly, with its traceback."""
        for error in errors:
            original = error.original_error
            part = None if original is None else outage_part(original)
            if original is not None and part is not None:
                OUTAGES.failed(part, original)  # once per outage, not a traceback per request
            elif original is not None and is_unexpected(error):
                logger.error(
                    "event=unexpected_error path=%s error=%r",
                    ".".join(str(p) for p in error.path or ()),
                    original,
                    exc_info=(type(original), original, original.__traceback__),
                )
            else:
                logger.debug("event=graphql_error error=%r", error.message)


def schema_extensions() -> Sequence[Callable[[], SchemaExtension]]:
    """Factories (strawberry builds fresh extension instances per operation)."""
    return (
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        DepthAndAliasLimits,
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        MaskUnexpectedErrors,
    )
