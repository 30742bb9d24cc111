"""The GraphQL schema, assembled from parts.

A part is a strawberry type holding Query, Mutation or Subscription fields. The read models
(Order, orders, dashboardStats, projections, orderUpdated, ...) each have their own module under
`api/graphql/schema/`, whose types are listed in `QUERY_PARTS` / `SUBSCRIPTION_PARTS` below (or are
passed to `build_schema`).
"""

from __future__ import annotations

from collections.abc import Sequence

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api.graphql.command_rate import CommandRate
from api.graphql.execution import PerEventMemoExecutionContext
from api.graphql.extensions import DEFAULT_LIMITS, OrdersSchema, schema_extensions
from api.graphql.schema.event_log import EventLogQuery
from api.graphql.schema.mutations import CommandMutation
from api.graphql.schema.read_model import ReadModelQuery, ReadModelSubscription
from api.graphql.schema.scalars import SCALAR_MAP
from api.graphql.schema.subscriptions import EventLogSubscription
from api.http.limits import QueryLimits

QUERY_PARTS: tuple[type, ...] = (ReadModelQuery, EventLogQuery)
MUTATION_PARTS: tuple[type, ...] = (CommandMutation,)
SUBSCRIPTION_PARTS: tuple[type, ...] = (ReadModelSubscription, EventLogSubscription)


ROOT_DESCRIPTIONS = {
    "Query": "Reads: the read model (Redis views) and the event log (the write side's truth).",
    "Mutation": "The commands: every change to an order is one of them.",
    "Subscription": "Live updates over websockets (graphql-transport-ws or graphql-ws).",
}


def _root(name: str, parts: Sequence[type]) -> type:
    """The root type `name` with every part's fields, and its description."""
    merged = merge_types(name, tuple(parts))
    merged.__strawberry_definition__.description = ROOT_DESCRIPTIONS[name]  # type: ignore[attr-defined]
    return merged


def make_schema(
    query: type,
    mutation: type | None = None,
    subscription: type | None = None,
    *,
    limits: QueryLimits = DEFAULT_LIMITS,
) -> strawberry.Schema:
    """A schema with the service's scalars, config and extensions (shared with the baseline)."""
    return OrdersSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        # CommandRate: commands per second per identity (api.graphql.command_rate)
        extensions=(*schema_extensions(limits), CommandRate),
        limits=limits,
        execution_context_class=PerEventMemoExecutionContext,
    )


def build_schema(
    *,
    extra_queries: Sequence[type] = (),
    extra_mutations: Sequence[type] = (),
    extra_subscriptions: Sequence[type] = (),
    limits: QueryLimits = DEFAULT_LIMITS,
) -> strawberry.Schema:
    """The public schema: every part merged into Query, Mutation and Subscription."""
    return make_schema(
        query=_root("Query", (*QUERY_PARTS, *extra_queries)),
        mutation=_root("Mutation", (*MUTATION_PARTS, *extra_mutations)),
        subscription=_root("Subscription", (*SUBSCRIPTION_PARTS, *extra_subscriptions)),
        limits=limits,
    )


__all__ = ["build_schema", "make_schema"]
