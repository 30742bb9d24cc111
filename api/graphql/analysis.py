"""One bounded pass over an operation, before any other validation: its cost, depth, aliases and
expanded size, or the reason it is refused.

The pass walks each selection once. A named fragment is summarised the first time it is spread
(for the page size it is spread under) and every later spread reuses the summary, so the work is
linear in the document even when fragments fan out exponentially; the summaries still count the
expanded operation (a fragment spread twice counts twice). The expanded number of fields has a
hard budget (`QueryLimits.max_fields`) shared by every rule: a document over it is refused before
graphql-core's own rules, some of which are super-linear in the expanded size, ever see it.
Nesting (fields, inline fragments and spreads together) is bounded too, so the recursion can
never reach Python's limit.

The cost is an upper bound of the bytes of the response's `data` (`api.graphql.cost` has the leaf
and list bounds). `@include` and `@skip` are ignored: both branches count, an upper bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    ValueNode,
    VariableNode,
    get_named_type,
    is_leaf_type,
    value_from_ast,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

from api.graphql.cost import (
    DEFAULT_LIST_SIZE,
    LIGHT_LIST_SIZES,
    LIST_SIZES,
    ONE_STREAM_LISTS,
    PAGE_LIMITS,
    UNKNOWN_PAGE_LIMIT,
    SchemaBounds,
    schema_bounds,
)
from api.http.limits import TOO_COMPLEX, QueryLimits

VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
"""Apollo's code for a document that does not validate."""

MAX_NESTING = 64
"""Selections nested deeper than this (fields, inline fragments and fragment spreads together)
are refused: far past the depth limit, and far from Python's recursion limit."""

NULL_BYTES = 4

Scope = int | str | None
"""What a selection set's lists depend on besides its own fields: the enclosing connection's
page size (its `edges`), "types" / "fields" under introspection's list of every type (whose
nested lists are then priced by their totals over the schema), `LIGHT` for the events of an
order's stream after its first, else None."""

LIGHT = "light"
"""The scope of an order's events other than the one OrderPlaced a stream holds: their data is
priced by `LIGHT_FIELD_BYTES` and `LIGHT_LIST_SIZES`."""


class Refused(Exception):
    """The operation is refused by the analysis: `message` for the client, `code` its kind."""

    def __init__(self, message: str, reason: str, code: str = TOO_COMPLEX) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        """Which limit: cost, depth, aliases, fields, nesting or cycle (for the log)."""
        self.code = code

    def as_error(self) -> GraphQLError:
        """The refusal as the GraphQL error the client reads."""
        return GraphQLError(self.message, extensions={"code": self.code})


@dataclass(frozen=True, slots=True)
class Summary:
    """What a selection set amounts to once expanded."""

    bytes: int
    """Its keys and values inside the object's braces, at most."""
    fields: int
    """Field nodes in the expanded selection (each spread of a fragment counts its fields)."""
    aliases: int
    depth: int
    """Fields with selections nested below, the deepest path (introspection excluded)."""


EMPTY = Summary(bytes=0, fields=0, aliases=0, depth=0)


def _plus(a: Summary, b: Summary) -> Summary:
    return Summary(
        bytes=a.bytes + b.bytes,
        fields=a.fields + b.fields,
        aliases=a.aliases + b.aliases,
        depth=max(a.depth, b.depth),
    )


def _lists(kind: GraphQLOutputType) -> int:
    """How many list wrappers the type has (`[[X!]!]` has 2)."""
    count = 0
    while True:
        if isinstance(kind, GraphQLNonNull):
            kind = kind.of_type
        elif isinstance(kind, GraphQLList):
            count += 1
            kind = kind.of_type
        else:
            return count


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        limits: QueryLimits,
    ) -> None:
        self.schema = schema
        self.bounds: SchemaBounds = schema_bounds(schema)
        self.fragments = fragments
        self.variables = dict(variables)
        self.limits = limits
        self.variable_defaults: dict[str, ValueNode] = {}
        self.memo: dict[tuple[str, Scope], Summary] = {}
        self.visiting: set[str] = set()
        self.root: GraphQLNamedType | None = None

    def operation(self, operation: OperationDefinitionNode) -> Summary:
        """An operation's selections, with its variables' defaults."""
        self.variable_defaults = {
            definition.variable.name.value: definition.default_value
            for definition in operation.variable_definitions or ()
            if definition.default_value is not None
        }
        self.root = self.schema.get_root_type(operation.operation)
        if self.root is None:
            return EMPTY  # validation refuses an operation type the schema lacks
        return self.selections(operation.selection_set, self.root, None, 0)

    def check_fields(self, fields: int) -> None:
        """Refuse past the expanded-size budget (checked as sums grow, so they stay small)."""
        if fields > self.limits.max_fields:
            raise Refused(
                f"The document selects more than {self.limits.max_fields} fields once its "
                "fragments are expanded: select fewer fields or spread fewer fragments.",
                "fields",
            )

    def _over(self, summary: Summary) -> Summary:
        self.check_fields(summary.fields)
        return summary

    def selections(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType,
        page: Scope,
        nesting: int,
    ) -> Summary:
        """A selection set on `parent`; `page` is the enclosing connection's `first`."""
        if nesting > MAX_NESTING:
            raise Refused(f"Selections are nested more than {MAX_NESTING} deep.", "nesting")
        total = EMPTY
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                part = self.field(selection, parent, page, nesting)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                part = self.selections(selection.selection_set, target or parent, page, nesting + 1)
            elif isinstance(selection, FragmentSpreadNode):
                part = self.spread(selection.name.value, parent, page, nesting)
            else:  # pragma: no cover - the three selection kinds above are all there are
                continue
            total = self._over(_plus(total, part))
        return total

    def spread(
        self, name: str, parent: GraphQLNamedType | None, page: Scope, nesting: int
    ) -> Summary:
        """A named fragment's summary, computed once per page size."""
        key = (name, page)
        known = self.memo.get(key)
        if known is not None:
            return known
        fragment = self.fragments.get(name)
        if fragment is None:
            return EMPTY  # unknown: validation names it
        if name in self.visiting:
            raise Refused(
                f'Cannot spread fragment "{name}" within itself.', "cycle", VALIDATION_FAILED
            )
        self.visiting.add(name)
        target = self.schema.get_type(fragment.type_condition.name.value) or parent
        if target is None:
            return EMPTY  # an unknown type: validation names it
        summary = self.selections(fragment.selection_set, target, page, nesting + 1)
        self.visiting.discard(name)
        self.memo[key] = summary
        return summary

    def _definition(self, parent: GraphQLNamedType, name: str) -> GraphQLField | None:
        if parent is self.root and name in ("__schema", "__type"):
            return SchemaMetaFieldDef if name == "__schema" else TypeMetaFieldDef
        fields: Mapping[str, GraphQLField] | None = getattr(parent, "fields", None)
        return None if fields is None else fields.get(name)

    def field(
        self, node: FieldNode, parent: GraphQLNamedType, page: Scope, nesting: int
    ) -> Summary:
        """One field: its key, and its value at its largest."""
        name = node.name.value
        key = node.alias.value if node.alias else name
        aliases = 1 if node.alias else 0
        key_bytes = len(key.encode()) + 4  # quotes, colon and comma
        if name == "__typename":
            return Summary(key_bytes + self.bounds.typename_bytes, 1, aliases, 0)
        definition = self._definition(parent, name)
        if definition is None or (node.selection_set and is_leaf_type(definition.type)):
            # Validation refuses it, but reads what it selects: that counts all the same.
            inner = EMPTY
            if node.selection_set is not None:
                inner = self.selections(node.selection_set, parent, None, nesting + 1)
            depth = 0 if node.selection_set is None else 1 + inner.depth
            return Summary(
                key_bytes + NULL_BYTES + inner.bytes,
                1 + inner.fields,
                aliases + inner.aliases,
                depth,
            )
        kind = get_named_type(definition.type)
        first = self._first(node, parent, definition)
        lists = _lists(definition.type)
        if is_leaf_type(kind) or node.selection_set is None:
            value = self.bounds.leaf(parent, name, kind, light=page == LIGHT)
            inner = EMPTY
        elif lists == 1 and f"{parent.name}.{name}" in ONE_STREAM_LISTS:
            # One order's events: one of them at most is the heavy OrderPlaced.
            inner = self.selections(node.selection_set, kind, None, nesting + 1)
            light = self.selections(node.selection_set, kind, LIGHT, nesting + 1)
            size = self._list_size(parent, name, first, page)
            heavy_bytes = math.ceil(min(size, 1) * (inner.bytes + 3))
            light_bytes = math.ceil(max(size - 1, 0) * (light.bytes + 3))
            value = 2 + heavy_bytes + light_bytes
            lists = 0
        else:
            inner_scope = first if lists == 0 else self.bounds.scope(parent.name, name, page)
            if lists == 0 and first is None and page == LIGHT:
                inner_scope = LIGHT
            inner = self.selections(node.selection_set, kind, inner_scope, nesting + 1)
            value = max(inner.bytes + 2, NULL_BYTES)
        for level in range(lists):
            size = self._list_size(parent, name, first if level == 0 else None, page)
            value = max(2 + math.ceil(size * (value + 1)), NULL_BYTES)
        introspection = name.startswith("__")
        depth = 0 if node.selection_set is None or introspection else 1 + inner.depth
        return Summary(key_bytes + value, 1 + inner.fields, aliases + inner.aliases, depth)

    def _list_size(
        self, parent: GraphQLNamedType, name: str, first: int | None, page: Scope
    ) -> float:
        if first is not None:
            return first
        introspection = self.bounds.list_size(parent.name, name, page)
        if introspection is not None:
            return introspection
        if name == "edges" and isinstance(page, int):
            return page
        key = f"{parent.name}.{name}"
        if page == LIGHT and key in LIGHT_LIST_SIZES:
            return LIGHT_LIST_SIZES[key]
        return LIST_SIZES.get(key, DEFAULT_LIST_SIZE)

    def _first(self, node: FieldNode, parent: GraphQLNamedType, field: GraphQLField) -> int | None:
        """The page a `first` argument asks for, as graphql will coerce it (0 past what the
        resolver accepts, which it refuses); None when the field takes no `first`."""
        argument = field.args.get("first")
        if argument is None:
            return None
        limit = PAGE_LIMITS.get(f"{parent.name}.{node.name.value}", UNKNOWN_PAGE_LIMIT)
        value: object = argument.default_value
        for given in node.arguments or ():
            if given.name.value != "first":
                continue
            if isinstance(given.value, VariableNode):
                value = self._variable(given.value.name.value, argument, value)
            else:
                value = value_from_ast(given.value, argument.type, self.variables)
        if value is Undefined or value is None:
            return limit  # null or unknowable: the resolver's default, at most its limit
        if not isinstance(value, int) or isinstance(value, bool):
            return limit
        if value > limit:
            return 0  # the resolver refuses it (BAD_USER_INPUT): no list at all
        return max(value, 0)

    def _variable(self, name: str, argument: Any, absent: object) -> object:
        """A variable's value as graphql coerces it for the argument (1000.0 is the Int 1000);
        Undefined when it cannot be coerced (the operation then fails before it runs)."""
        if name in self.variables:
            raw = self.variables[name]
            if raw is None:
                return None
            kind = get_named_type(argument.type)
            try:
                return kind.parse_value(raw)
            except (GraphQLError, TypeError, ValueError, OverflowError):
                return Undefined
        default = self.variable_defaults.get(name)
        if default is not None:
            return value_from_ast(default, argument.type)
        return absent  # an absent variable leaves the argument's default


@dataclass(frozen=True, slots=True)
class Analysis:
    """An operation's measures, within the limits."""

    cost: int
    """At most this many bytes of `data` in the response."""
    fields: int
    aliases: int
    depth: int


def analyse_document(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode | None,
    variables: Mapping[str, Any],
    limits: QueryLimits,
) -> Analysis:
    """The measures of `operation` (the one to run, None when the name given matches none), or
    `Refused` when one is over its limit.

    Validation reads every definition of the document, not only the operation that runs, so the
    expanded-size budget covers them all: the other operations and the fragments no operation
    spreads count too."""
    fragments = fragments_of(document)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    walk = _Walk(schema, fragments, variables, limits)
    fields = 0
    measured = Analysis(cost=0, fields=0, aliases=0, depth=0)
    # The operation that runs first: its fragments are summarised with its own variables.
    ordered = ([operation] if operation is not None else []) + [
        other for other in operations if other is not operation
    ]
    for current in ordered:
        summary = walk.operation(current)
        fields += summary.fields
        walk.check_fields(fields)
        if current is operation:
            measured = _measured(summary, limits)
    spread = {name for name, _ in walk.memo}
    for name in fragments:
        if name not in spread:
            fields += walk.spread(name, None, None, 0).fields
            walk.check_fields(fields)
    return measured


def _measured(summary: Summary, limits: QueryLimits) -> Analysis:
    if summary.depth > limits.max_depth:
        raise Refused(
            f"The operation's depth is {summary.depth} nested fields, over the limit of "
            f"{limits.max_depth}.",
            "depth",
        )
    if summary.aliases > limits.max_aliases:
        raise Refused(
            f"The operation uses {summary.aliases} aliases, over the limit of "
            f"{limits.max_aliases}.",
            "aliases",
        )
    cost = summary.bytes + len('{"data":{}}')
    if cost > limits.max_cost:
        raise Refused(
            f"The query's cost is {cost} (bytes its answer may take), over the limit of "
            f"{limits.max_cost}: ask for smaller pages (first) or fewer nested lists and "
            "event data.",
            "cost",
        )
    return Analysis(cost=cost, fields=summary.fields, aliases=summary.aliases, depth=summary.depth)


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    """The document's named fragments."""
    return {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
