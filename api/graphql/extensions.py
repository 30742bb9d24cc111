"""The schema extensions every served schema uses: caches, limits and error masking.

Public and baseline schemas share this list, so a benchmark compares like with like.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any, cast

import strawberry
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    IntValueNode,
    OperationDefinitionNode,
    ValidationContext,
    ValidationRule,
    parse,
    visit,
)
from graphql.execution.values import get_variable_values
from graphql.language import Visitor
from graphql.validation.validate import ValidationAbortedError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import (
    MaskErrors,
    SchemaExtension,
)
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType

from api.graphql.analysis import VALIDATION_FAILED, Analysis, Refused, analyse_document
from api.graphql.document_cache import DocumentCache, Entry
from api.graphql.tracing import request_log_extension
from api.graphql.variables import variables_error
from api.http.limits import TOO_COMPLEX, Introspection, QueryLimits
from api.http.outages import OUTAGES, outage_part, unavailable_of
from api.http.request_record import operation_of

logger = logging.getLogger(__name__)

DEFAULT_LIMITS = QueryLimits()
INTERNAL_ERROR_CODE = "INTERNAL_SERVER_ERROR"
BAD_USER_INPUT = "BAD_USER_INPUT"
MAX_INT_LITERAL_DIGITS = 40
"""Longer integer literals are refused before validation: no Int, ID or Decimal argument needs
them, and converting thousands of digits is slow (and past 4,300 an error in Python)."""
_TOKEN_LIMIT_MESSAGE = "Document contains more than"
_PARSER_LIMIT_MESSAGES = (_TOKEN_LIMIT_MESSAGE, "nested too deeply")
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
"""Apollo's code for a document that does not parse."""


class QueryTooComplex(GraphQLError):
    """A document over the cost, depth, alias, token or length limits: refused unexecuted."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": TOO_COMPLEX})


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
    return _code_validation_errors(validate_document(schema, document, rules))


class QueryLimiter(SchemaExtension):
    """Parses through a cache bounded by bytes, analyses the operation in one bounded pass
    (`api.graphql.analysis`: cost, depth, aliases, expanded size), then validates, and applies
    `QueryLimits`.

    Only small query texts are cached; a cached document keeps its validation results and its
    analyses (per page-size variables), so a document seen before is not walked again. Before
    anything else: the variables' budgets, and several operations need an `operationName` (the
    GraphQL spec). The analysis runs before graphql-core's rules, some of which take time
    super-linear in a document's expanded size, and its refusals answer QUERY_TOO_COMPLEX.
    Parse errors answer GRAPHQL_PARSE_FAILED, validation errors GRAPHQL_VALIDATION_FAILED.
    Introspection follows `limits.introspection`.
    """

    def __init__(self, limits: QueryLimits) -> None:
        super().__init__()
        self.limits = limits
        self._cache = document_cache(limits.cache_bytes)
        self._entry: Entry | None = None

    def _may_introspect(self) -> bool:
        policy = self.limits.introspection
        if policy is Introspection.ALL:
            return True
        if policy is Introspection.OFF:
            return False
        principal = getattr(self.execution_context.context, "principal", None)
        return bool(getattr(principal, "is_staff", False))

    def on_operation(self) -> Iterator[None]:
        """The token limit for the parser, and the introspection rule."""
        context = self.execution_context
        context.parse_options["max_tokens"] = self.limits.max_tokens
        if not self._may_introspect():
            context.validation_rules = (*context.validation_rules, NoIntrospection)
        yield

    def on_parse(self) -> Iterator[None]:
        """A small document from the cache; anything else (large documents, syntax errors) is
        left to strawberry's own parse, whose errors get their code here."""
        context = self.execution_context
        query = context.query
        self._entry = None
        if query is not None and len(query) <= self.limits.max_cached_document:
            entry = self._cache.get(query)
            if entry is None:
                try:
                    document = parse(query, max_tokens=self.limits.max_tokens)
                except GraphQLError:
                    document = None  # parsed again, and reported, by strawberry
                if document is not None:
                    entry = self._cache.put(query, document)
            if entry is not None:
                context.graphql_document = entry.document
                self._entry = entry
        yield
        for error in context.pre_execution_errors or ():
            _code_parse_error(error)

    def on_validate(self) -> Iterator[None]:
        """Variables, operation choice, the analysis, then literals and the validation rules
        (each cached with the document when it is)."""
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            yield
            return
        context.pre_execution_errors = self._check(context, document)
        yield

    def _check(self, context: ExecutionContext, document: DocumentNode) -> list[GraphQLError]:
        limits = self.limits
        variables = context.variables
        refused = variables_error(variables, limits.max_variables_bytes, limits.max_variables_depth)
        if refused is not None:
            logger.info("event=query_refused reason=variables message=%r", refused.message)
            return [refused]
        provided = getattr(context, "_provided_operation_name", None)
        operation = operation_of(document, provided)
        if operation is None and provided is None:
            return [
                GraphQLError(
                    "The document has several operations: say which to run with operationName.",
                    extensions={"code": BAD_USER_INPUT},
                )
            ]
        outcome = self._analysis(document, operation, provided, variables or {})
        if isinstance(outcome, Refused):
            logger.info(
                "event=query_refused reason=%s code=%s message=%r",
                outcome.reason,
                outcome.code,
                outcome.message,
            )
            return [outcome.as_error()]
        schema = context.schema._schema
        rules = context.validation_rules
        entry = self._entry
        if entry is None:
            errors = _validate(schema, document, rules)
        elif rules in entry.validations:
            errors = entry.validations[rules]
        else:
            errors = entry.validations[rules] = _validate(schema, document, rules)
        if errors or operation is None or not operation.variable_definitions:
            return errors
        return _variable_errors(schema, operation, variables or {})

    def _analysis(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode | None,
        provided: str | None,
        variables: Mapping[str, Any],
    ) -> Analysis | Refused:
        entry = self._entry
        key = (provided, _page_variables(variables))
        if entry is not None:
            known = entry.analyses.get(key)
            if known is not None:
                return cast("Analysis | Refused", known)
        schema = self.execution_context.schema._schema
        try:
            outcome: Analysis | Refused = analyse_document(
                schema, document, operation, variables, self.limits
            )
        except Refused as refusal:
            # Kept with the document: without its traceback, whose frames hold the entry.
            outcome = refusal.with_traceback(None)
        if entry is not None:
            entry.remember_analysis(key, outcome)
        return outcome


def _variable_errors(
    schema: GraphQLSchema, operation: OperationDefinitionNode, variables: Mapping[str, Any]
) -> list[GraphQLError]:
    """The variables coerced as execution will, so a value of the wrong type answers
    BAD_USER_INPUT before anything runs, on every transport."""
    coerced = get_variable_values(schema, operation.variable_definitions or (), dict(variables))
    if not isinstance(coerced, list):
        return []
    for error in coerced:
        error.extensions = {**(error.extensions or {}), "code": BAD_USER_INPUT}
    return coerced


def _page_variables(variables: Mapping[str, Any]) -> tuple[tuple[str, object], ...]:
    """What of the variables can change an analysis: the numbers (page sizes) and which are
    given. Other values (ids, inputs) are only marked present, so one cached analysis serves
    every order id."""
    return tuple(
        (name, value if value is None or isinstance(value, (int, float)) else "given")
        for name, value in variables.items()
    )


def _code_parse_error(error: GraphQLError) -> None:
    """Parse errors answer GRAPHQL_PARSE_FAILED; the parser's own limits QUERY_TOO_COMPLEX."""
    if (error.extensions or {}).get("code") or not isinstance(error, GraphQLSyntaxError):
        return
    limit = any(text in error.message for text in _PARSER_LIMIT_MESSAGES)
    error.extensions = {
        **(error.extensions or {}),
        "code": TOO_COMPLEX if limit else PARSE_FAILED,
    }


def _code_validation_errors(errors: list[GraphQLError]) -> list[GraphQLError]:
    for error in errors:
        if isinstance(error, ValidationAbortedError):
            # graphql-core stops when a document is too much work to check (or has too many
            # errors): a limit, not a mistake to point at.
            error.extensions = {**(error.extensions or {}), "code": TOO_COMPLEX}
        elif not (error.extensions or {}).get("code"):
            error.extensions = {**(error.extensions or {}), "code": VALIDATION_FAILED}
    return errors


@cache
def document_cache(max_bytes: int) -> DocumentCache:
    """The process's document cache for a budget (one per limits value)."""
    return DocumentCache(max_bytes)


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

    def _process_result(self, result: object) -> None:
        """strawberry's, without its `isinstance` against a runtime-checkable protocol (which
        walks the protocol's members on every operation): a result with errors has them."""
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

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
        """Refuse an over-long text, else execute. A subscription is never executed here (one
        result cannot carry it; websockets stream it): refused as an operation type the
        transport does not run."""
        refused = _too_long(query, self.limits)
        if refused is not None:
            return refused
        allowed = kwargs.get("allowed_operation_types")
        if allowed is not None and OperationType.SUBSCRIPTION in allowed:
            kwargs["allowed_operation_types"] = set(allowed) - {OperationType.SUBSCRIPTION}
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
        request_log_extension(),
    )


__all__ = ["OrdersSchema", "QueryLimiter", "QueryTooComplex", "schema_extensions"]
