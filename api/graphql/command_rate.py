"""Commands per second per identity: every mutation field spends one token of the caller's
bucket (`api.http.budgets.IdentityBudgets.commands`), so 30 aliased placeOrders in one request
spend 30.

The whole operation is priced before it runs, and refused whole when the bucket lacks the
tokens: mutation fields are non-null, so refusing the eleventh of thirty would null the answer
of the ten already written. The refusal is one RATE_LIMITED error with `retryAfter`, and nothing
is written. One check serves every transport (HTTP and both websocket protocols), as it sits in
the schema's execution.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from api.http.budgets import CALLER_STATE, Caller, RateLimited


def root_fields(document: DocumentNode, operation_name: str | None) -> int:
    """How many root fields the operation executes: distinct response keys (fields with the same
    key merge into one execution), through fragments, each fragment expanded once."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    keys: set[str] = set()
    expanded: set[str] = set()
    pending: list[SelectionSetNode] = [operation.selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                if selection.name.value != "__typename":
                    keys.add((selection.alias or selection.name).value)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in expanded and name in fragments:
                    expanded.add(name)
                    pending.append(fragments[name].selection_set)
    return len(keys)


def caller_of(context: object) -> Caller | None:
    """The `Caller` the view or the websocket handler noted on the request, if any."""
    request = getattr(context, "request", None)
    state = getattr(request, "state", None)
    caller = getattr(state, CALLER_STATE, None)
    return caller if isinstance(caller, Caller) else None


class CommandRate(SchemaExtension):
    """Spends the caller's command tokens for a mutation before it executes, or refuses it with
    RATE_LIMITED instead (staff are not budgeted).

    The price is taken once the document has validated (the query limiter validates before
    this extension's turn), so the refusal is a request error: HTTP 429, and an `error` message
    for the operation on both websocket protocols. Were nothing validated yet, the price is
    taken just before execution instead."""

    def __init__(self) -> None:
        super().__init__()
        self._priced = False

    def on_validate(self) -> Iterator[None]:
        """Price a mutation that validated."""
        context = self.execution_context
        if context.pre_execution_errors == []:
            refused = self._price()
            if refused is not None:
                context.pre_execution_errors = [refused]
        yield

    def on_execute(self) -> Iterator[None]:
        """Price a mutation not priced yet; refuse it whole when the bucket lacks the tokens."""
        refused = self._price()
        if refused is not None:
            self.execution_context.result = ExecutionResult(data=None, errors=[refused])
        yield

    def _price(self) -> RateLimited | None:
        """Spend the operation's tokens, once: None when spent (or free), else the refusal."""
        if self._priced:
            return None
        self._priced = True
        context = self.execution_context
        document = context.graphql_document
        if document is None or context.operation_type is not OperationType.MUTATION:
            return None
        caller = caller_of(context.context)
        if caller is None or not caller.budgeted:
            return None
        count = root_fields(document, context.operation_name)
        wait = caller.budgets.commands.try_spend(caller.identity, count) if count else 0.0
        if not wait:
            return None
        return RateLimited(
            "commands",
            wait,
            f"Too many commands: {count} asked, at most "
            f"{caller.budgets.limits.commands_per_second} a second on average; nothing was "
            "written.",
        )
