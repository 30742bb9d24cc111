"""Every metric the service exports, named by Prometheus conventions (`orders_` prefix, base
units, `_total` counters, `_seconds` durations).

The instruments are module-level, as prometheus-client expects: a metric is registered once per
process in its default registry (or, with PROMETHEUS_MULTIPROC_DIR, in files every process of
the host shares; see `metrics.exposition`). They hold no client or connection, only numbers.

Labels are bounded: command types and outcomes are this code's own names, fields are the
schema's, and operation names go through `metrics.operations`. No label ever carries an id.
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from metrics.operations import OperationNames

M = TypeVar("M", Counter, Histogram, Gauge)

# Latencies from a loopback cache hit (~1 ms) to a deadline (seconds).
_LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500)

REQUESTS: Final = Counter(
    "orders_requests_total",
    "GraphQL requests (HTTP) and websocket operations, by operation name and outcome (ok, an "
    "error code, or http_<status>).",
    ["transport", "operation", "outcome"],
)
REQUEST_DURATION: Final = Histogram(
    "orders_request_duration_seconds",
    "Duration of GraphQL requests (HTTP) and websocket operations (a subscription's lifetime).",
    ["transport", "operation"],
    buckets=_LATENCY_BUCKETS,
)
COMMANDS: Final = Counter(
    "orders_commands_total",
    "Commands handled, by command type and outcome.",
    ["type", "outcome"],
)
COMMAND_CONFLICTS: Final = Counter(
    "orders_command_conflicts_total",
    "Appends refused because the order changed since it was read (each one, retried or not).",
    ["type"],
)
COMMAND_RETRIES: Final = Counter(
    "orders_command_retries_total",
    "Commands decided again on a fresh read (after a conflict or a stale cached state).",
    ["type"],
)
APPEND_DURATION: Final = Histogram(
    "orders_store_append_duration_seconds",
    "Duration of a command's append to the event store, until it is durable.",
    buckets=_LATENCY_BUCKETS,
)
COMMIT_WRITES: Final = Histogram(
    "orders_store_commit_writes",
    "Writes (appends) committed together in one group commit of the embedded or PostgreSQL store.",
    ["store"],
    buckets=_BATCH_BUCKETS,
)
PROJECTOR_EVENTS: Final = Counter(
    "orders_projector_events_total",
    "Events applied to the views by this process's projector workers (rate: events/s).",
    ["projection"],
)
PROJECTOR_LAG_EVENTS: Final = Gauge(
    "orders_projector_lag_events",
    "Order events in the log not yet in the views (counted up to 10,000; -1: unknown).",
    ["projection"],
    multiprocess_mode="livemax",
)
PROJECTOR_LAG_SECONDS: Final = Gauge(
    "orders_projector_lag_seconds",
    "Age of the oldest order event not yet in the views (0: caught up).",
    ["projection"],
    multiprocess_mode="livemax",
)
PROJECTOR_PARKED: Final = Gauge(
    "orders_projector_parked_events",
    "Events parked by the projection's subscription group (need an operator).",
    ["projection"],
    multiprocess_mode="livemax",
)
RELAY_PUBLISHED: Final = Counter(
    "orders_relay_published_total",
    "Order events the Kafka relay published and the broker acknowledged.",
)
RELAY_LAG_SECONDS: Final = Gauge(
    "orders_relay_lag_seconds",
    "Seconds from the commit of the last event the broker acknowledged to its acknowledgement.",
    multiprocess_mode="livemax",
)
WS_CONNECTIONS: Final = Gauge(
    "orders_ws_connections",
    "Open GraphQL websocket connections.",
    multiprocess_mode="livesum",
)
WS_SUBSCRIPTIONS: Final = Gauge(
    "orders_ws_subscriptions",
    "Active websocket subscriptions, by root field.",
    ["field"],
    multiprocess_mode="livesum",
)
WS_MESSAGES_PUSHED: Final = Counter(
    "orders_ws_messages_pushed_total",
    "Results pushed to websocket subscribers (next / data messages).",
)
REDIS_POOL_WAIT: Final = Histogram(
    "orders_redis_pool_wait_seconds",
    "Time spent waiting for a free connection of the bounded Redis pool.",
    buckets=_LATENCY_BUCKETS,
)
BUDGET_REFUSALS: Final = Counter(
    "orders_budget_refusals_total",
    "Requests refused by a per-identity budget (RATE_LIMITED), by budget.",
    ["budget"],
)


class _Children(Generic[M]):
    """A metric's labelled children, looked up once per label set: `labels()` validates and
    locks on every call (several microseconds), a dict lookup of the bound child does not. The
    label sets are bounded, so is this cache."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._bound: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        """The child for `labels`."""
        child = self._bound.get(labels)
        if child is None:
            child = self._bound[labels] = self._metric.labels(*labels)
        return child


_requests = _Children(REQUESTS)
_request_duration = _Children(REQUEST_DURATION)
_commands = _Children(COMMANDS)
_conflicts = _Children(COMMAND_CONFLICTS)
_retries = _Children(COMMAND_RETRIES)
_budget_refusals = _Children(BUDGET_REFUSALS)
_operations = OperationNames()


def observe_request(transport: str, operation: str, outcome: str, seconds: float) -> None:
    """One GraphQL request or websocket operation ended."""
    label = _operations.label(operation, outcome)
    _requests(transport, label, outcome).inc()
    _request_duration(transport, label).observe(seconds)


def count_command(kind: str, error: BaseException | None) -> None:
    """A command of type `kind` ended: accepted (`error` None) or refused with `error`."""
    _commands(kind, command_outcome(error)).inc()


def count_conflict(kind: str) -> None:
    """An append of a `kind` command was refused: the order changed since it was read."""
    _conflicts(kind).inc()


def count_retry(kind: str) -> None:
    """A `kind` command is decided again on a fresh read."""
    _retries(kind).inc()


_OUTCOMES: Final = {
    "ValidationFailed": "validation_failed",
    "OrderNotFound": "not_found",
    "OrderAlreadyExists": "already_exists",
    "InvalidTransition": "invalid_transition",
    "ConcurrencyConflict": "conflict",
    "StoreUnavailable": "unavailable",
}


def command_outcome(error: BaseException | None) -> str:
    """The outcome label of a command that ended with `error` (None: accepted)."""
    if error is None:
        return "accepted"
    return _OUTCOMES.get(type(error).__name__, "error")


SUBSCRIPTION_FIELDS: Final = frozenset(
    {"orderUpdated", "ordersUpdated", "dashboardStats", "orderEvents", "events"}
)


def subscription_label(field: str | None) -> str:
    """A root subscription field as a label: the schema's names, else `other`."""
    return field if field in SUBSCRIPTION_FIELDS else "other"


def count_budget_refusal(budget: str) -> None:
    """A request refused by the per-identity budget named `budget` (the code's own names)."""
    _budget_refusals(budget).inc()
