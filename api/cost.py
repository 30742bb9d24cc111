"""The worst-case cost of a GraphQL operation, computed from its document before execution.

Every field costs 1, and a list multiplies the cost of what is selected inside it by how long
it can be: a field's `first` argument when it has one (the literal, the variable's value, or
the argument's default), else the list's known bound (`LIST_SIZES`), else `DEFAULT_LIST_SIZE`.
Fragments and the members of unions count in full (an upper bound), introspection fields count
1 each (the schema is small and fixed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from graphql.language import DocumentNode

LIST_SIZES: Mapping[str, int] = {
    # A connection's edges are already counted by the connection's `first`.
    "OrderConnection.edges": 1,
    "EventConnection.edges": 1,
    # The contract's bound: an order holds at most 100 lines.
    "Order.items": 100,
    "OrderState.items": 100,
    # One entry per status.
    "DashboardStats.byStatus": 4,
    "Query.projections": 4,
    # A command appends a few events at most.
    "CommandAccepted.eventIds": 4,
}
"""Bounds of the lists that take no `first` argument, by `Type.field`."""

DEFAULT_LIST_SIZE = 100
"""The bound assumed for a list neither `first` nor `LIST_SIZES` bounds."""


def _is_list(field: GraphQLField) -> bool:
    kind = field.type
    if isinstance(kind, GraphQLNonNull):
        kind = kind.of_type
    return isinstance(kind, GraphQLList)


class _Costing:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        defaults: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.defaults = defaults

    def _first(self, node: FieldNode, field: GraphQLField) -> int | None:
        """The `first` argument's value, when the field takes one."""
        argument = field.args.get("first")
        if argument is None:
            return None
        value: object = argument.default_value
        for given in node.arguments or ():
            if given.name.value != "first":
                continue
            if isinstance(given.value, IntValueNode):
                value = int(given.value.value)
            elif isinstance(given.value, VariableNode):
                name = given.value.name.value
                value = self.variables.get(name, self.defaults.get(name, value))
            else:
                value = None  # null: the resolver's default, bounded below
        if not isinstance(value, int) or isinstance(value, bool):
            return DEFAULT_LIST_SIZE
        return max(value, 0)

    def _multiplier(self, node: FieldNode, parent: str, field: GraphQLField) -> int:
        first = self._first(node, field)
        if first is not None:
            return first
        if _is_list(field):
            return LIST_SIZES.get(f"{parent}.{node.name.value}", DEFAULT_LIST_SIZE)
        return 1

    def selections(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> int:
        """The cost of a selection set on `parent` (an object, interface or union type)."""
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, target or parent)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    target = self.schema.get_type(fragment.type_condition.name.value)
                    total += self.selections(fragment.selection_set, target or parent)
        return total

    def field(self, node: FieldNode, parent: GraphQLNamedType) -> int:
        """The cost of one field and what is selected inside it."""
        name = node.name.value
        # Objects and interfaces have fields; introspection fields are not among them.
        fields: Mapping[str, GraphQLField] | None = getattr(parent, "fields", None)
        field = None if fields is None else fields.get(name)
        if field is None or node.selection_set is None:
            return 1
        inner = self.selections(node.selection_set, get_named_type(field.type))
        return 1 + self._multiplier(node, parent.name, field) * inner


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
) -> int:
    """The worst-case number of fields `operation` of `document` resolves with `variables`."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    defaults: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        default = definition.default_value
        if isinstance(default, IntValueNode):
            defaults[definition.variable.name.value] = int(default.value)
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    costing = _Costing(schema, fragments, variables or {}, defaults)
    return costing.selections(operation.selection_set, root)
