"""The schema extensions every served schema uses: caches, limits and error masking.

Public and baseline schemas share this list, so a benchmark compares like with like.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from functools import cache, lru_cache
from typing import Any, cast

import strawberry
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    IntValueNode,
    OperationDefinitionNode,
    ValidationContext,
    ValidationRule,
    parse,
    visit,
)
from graphql.language import Visitor
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import (
    MaskErrors,
    SchemaExtension,
    max_aliases,
    query_depth_limiter,
)
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext
from strawberry.types.execution import ExecutionResult, PreExecutionError

from api.cost import operation_cost
from api.limits import TOO_COMPLEX, Introspection, QueryLimits
from api.outages import OUTAGES, outage_part, unavailable_of
from api.request_record import RequestLogExtension
from api.tracing import tracing_extensions

logger = logging.getLogger(__name__)

DEFAULT_LIMITS = QueryLimits()
INTERNAL_ERROR_CODE = "INTERNAL_SERVER_ERROR"
BAD_USER_INPUT = "BAD_USER_INPUT"
MAX_INT_LITERAL_DIGITS = 40
"""Longer integer literals are refused before validation: no Int, ID or Decimal argument needs
them, and converting thousands of digits is slow (and past 4,300 an error in Python)."""
_TOKEN_LIMIT_MESSAGE = "Document contains more than"


class QueryTooComplex(GraphQLError):
    """A document over the cost, depth, alias, token or length limits: refused unexecuted."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": TOO_COMPLEX})


class _CodedContext:
    """A validation context whose reported errors carry `code` (strawberry's limiters report
    plain errors; the contract gives limits their own code)."""

    def __init__(self, context: ValidationContext, code: str) -> None:
        self._context = context
        self._code = code

    def report_error(self, error: GraphQLError) -> None:
        error.extensions = {**(error.extensions or {}), "code": self._code}
        self._context.report_error(error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _coded(rule: type[ASTValidationRule], code: str) -> type[ASTValidationRule]:
    class Coded(rule):  # type: ignore[valid-type,misc]
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(cast("ValidationContext", _CodedContext(context, code)))

    Coded.__name__ = rule.__name__
    return Coded


@cache
def _limit_rules(max_depth: int, max_aliases_count: int) -> tuple[type[ASTValidationRule], ...]:
    # Built once per limit value: the validation cache keys on the rule classes, so rules made
    # anew per operation (as strawberry's own limiter extensions do) would make every lookup
    # miss.
    return (
        _coded(query_depth_limiter.create_validator(max_depth, None, None), TOO_COMPLEX),
        _coded(max_aliases.create_validator(max_aliases_count), TOO_COMPLEX),
    )


class NoIntrospection(ValidationRule):
    """Refuses `__schema` and `__type`, the entry points of introspection, with one error per
    document (`__typename` is not introspection and stays allowed)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.reported = False

    def enter_field(self, node: FieldNode, *_: object) -> None:
        """Report the first introspection entry point."""
        if node.name.value in ("__schema", "__type") and not self.reported:
            self.reported = True
            self.report_error(
                GraphQLError(
                    "Introspection is not allowed for this caller (the INTROSPECTION setting "
                    "allows it for staff by default).",
                    node,
                    extensions={"code": "FORBIDDEN"},
                )
            )


class _LongIntLiterals(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[GraphQLError] = []

    def enter_int_value(self, node: IntValueNode, *_: object) -> None:
        if len(node.value.lstrip("-")) > MAX_INT_LITERAL_DIGITS:
            self.errors.append(
                GraphQLError(
                    f"Integer literal of {len(node.value)} digits: at most "
                    f"{MAX_INT_LITERAL_DIGITS} are accepted.",
                    node,
                    extensions={"code": BAD_USER_INPUT},
                )
            )


def _validate(
    schema: GraphQLSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
) -> list[GraphQLError]:
    """Validation, after refusing literals no argument takes (before any rule converts them)."""
    literals = _LongIntLiterals()
    visit(document, literals)
    if literals.errors:
        return literals.errors
    return validate_document(schema, document, rules)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


class QueryLimiter(SchemaExtension):
    """Parses and validates through bounded caches, and applies `QueryLimits`.

    Only small query texts are cached (a large document's tree takes many times its text in
    memory), and the validation cache holds only documents of the parser cache (it keys on the
    document object). Before validation: several operations need an `operationName` (the
    GraphQL spec), and over-long integer literals are refused. After it, the operation's cost
    with its variables must be within budget. Introspection follows `limits.introspection`.
    """

    def __init__(self, limits: QueryLimits) -> None:
        super().__init__()
        self.limits = limits
        self._parse_cached = _parse_cache(limits.cache_size)
        self._validate_cached = _validate_cache(limits.cache_size)
        self._cached = False

    def _may_introspect(self) -> bool:
        policy = self.limits.introspection
        if policy is Introspection.ALL:
            return True
        if policy is Introspection.OFF:
            return False
        principal = getattr(self.execution_context.context, "principal", None)
        return bool(getattr(principal, "is_staff", False))

    def on_operation(self) -> Iterator[None]:
        """The token limit for the parser, and the limiters' validation rules."""
        context = self.execution_context
        context.parse_options["max_tokens"] = self.limits.max_tokens
        rules = _limit_rules(self.limits.max_depth, self.limits.max_aliases)
        if not self._may_introspect():
            rules = (*rules, NoIntrospection)
        context.validation_rules = (*context.validation_rules, *rules)
        yield

    def on_parse(self) -> Iterator[None]:
        """A small document from the cache; anything else (large documents, syntax errors) is
        left to strawberry's own parse, which reports errors as GraphQL errors."""
        context = self.execution_context
        query = context.query
        self._cached = False
        if query is not None and len(query) <= self.limits.max_cached_document:
            try:
                context.graphql_document = self._parse_cached(query, self.limits.max_tokens)
                self._cached = True
            except GraphQLError:
                pass  # parsed again, and reported, by strawberry
        yield

    def on_validate(self) -> Iterator[None]:
        """Operation choice, literals, the validation rules (cached when the document is), then
        the cost."""
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            yield
            return
        provided = getattr(context, "_provided_operation_name", None)
        operation = _operation(document, provided)
        if operation is None and provided is None:
            context.pre_execution_errors = [
                GraphQLError(
                    "The document has several operations: say which to run with operationName.",
                    extensions={"code": BAD_USER_INPUT},
                )
            ]
            yield
            return
        validate = self._validate_cached if self._cached else _validate
        errors = validate(context.schema._schema, document, context.validation_rules)
        if not errors and operation is not None:
            cost = operation_cost(context.schema._schema, document, operation, context.variables)
            if cost > self.limits.max_cost:
                logger.info(
                    "event=query_refused reason=cost cost=%d limit=%d", cost, self.limits.max_cost
                )
                errors = [
                    QueryTooComplex(
                        f"The query's cost is {cost}, over the limit of {self.limits.max_cost}: "
                        "ask for smaller pages (first) or fewer nested lists."
                    )
                ]
        context.pre_execution_errors = errors
        yield


@cache
def _parse_cache(size: int) -> Callable[[str, int], DocumentNode]:
    def parse_document(query: str, max_tokens: int) -> DocumentNode:
        return parse(query, max_tokens=max_tokens)

    return lru_cache(maxsize=size)(parse_document)


@cache
def _validate_cache(
    size: int,
) -> Callable[
    [GraphQLSchema, DocumentNode, tuple[type[ASTValidationRule], ...]], list[GraphQLError]
]:
    return lru_cache(maxsize=size)(_validate)


_REQUEST_ERRORS = (InvalidOperationTypeError, CannotGetOperationTypeError, MissingQueryError)
"""Strawberry's refusals of a request itself (no query, an operation type the transport does not
run, an operationName that names nothing): the client's to fix, with a clear message."""


def is_unexpected(error: GraphQLError) -> bool:
    """Errors with an original exception that is not a GraphQL error are bugs or outages: their
    text may leak internals. Auth, bad-input, request and validation errors are meant for the
    client."""
    original = error.original_error
    return original is not None and not isinstance(original, (GraphQLError, *_REQUEST_ERRORS))


class MaskUnexpectedErrors(MaskErrors):
    """Masks unexpected errors as "Unexpected error." (code INTERNAL_SERVER_ERROR), and gives the
    parser's token limit the contract's code for limits."""

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

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        for error in errors:
            if _TOKEN_LIMIT_MESSAGE in error.message and error.original_error is None:
                error.extensions = {**(error.extensions or {}), "code": TOO_COMPLEX}
            elif isinstance(error.original_error, _REQUEST_ERRORS):
                error.extensions = {**(error.extensions or {}), "code": BAD_USER_INPUT}
        return super()._process_errors(errors)


def _too_long(query: str | None, limits: QueryLimits) -> PreExecutionError | None:
    if query is None or len(query) <= limits.max_query_length:
        return None
    logger.debug("event=query_refused reason=length chars=%d", len(query))
    error = QueryTooComplex(
        f"The query text has {len(query)} characters; at most {limits.max_query_length} are "
        "accepted."
    )
    return PreExecutionError(data=None, errors=[error])


class OrdersSchema(strawberry.Schema):
    """A schema that logs unexpected errors in full (before masking hides them from clients) and
    keeps refusals meant for the client (auth, bad input, validation) out of the error log.

    Query texts over the length limit are refused before anything parses them."""

    def __init__(self, *args: Any, limits: QueryLimits = DEFAULT_LIMITS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits

    async def execute(self, query: str | None, *args: Any, **kwargs: Any) -> ExecutionResult:
        """Refuse an over-long text, else execute."""
        refused = _too_long(query, self.limits)
        if refused is not None:
            return refused
        return await super().execute(query, *args, **kwargs)

    async def stream(self, query: str | None, *args: Any, **kwargs: Any) -> Any:
        """Refuse an over-long text (one error result), else stream (websocket operations)."""
        refused = _too_long(query, self.limits)
        if refused is None:
            return await super().stream(query, *args, **kwargs)

        async def one_error() -> AsyncGenerator[ExecutionResult, None]:
            yield refused

        return one_error()

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


def schema_extensions(
    limits: QueryLimits = DEFAULT_LIMITS,
) -> Sequence[Callable[[], SchemaExtension]]:
    """Factories (strawberry builds fresh extension instances per operation)."""
    return (
        lambda: QueryLimiter(limits),
        MaskUnexpectedErrors,
        RequestLogExtension,
        *tracing_extensions(),
    )


__all__ = ["OrdersSchema", "QueryLimiter", "QueryTooComplex", "schema_extensions"]
