"""What the request log says of one request (`api.http.request_log` writes the line): filled in by
the layers that learn it (the operation's name, its outcome) through the current task's record,
so none of them needs to know about logging.

Outcomes: `ok`, the first error's `extensions.code` (`UNAVAILABLE`, `BAD_USER_INPUT`, ...), or
`http_<status>` for an HTTP refusal without a GraphQL error.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, parse
from strawberry.extensions import SchemaExtension

from application.ids import random_uuid
from metrics.instruments import observe_request
from telemetry.tracing import current_trace_id

logger = logging.getLogger("api.http.request_log")

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_NO_TRACE = "0" * 32

CORRELATION_HEADER = "x-correlation-id"
MAX_CORRELATION_ID = 128


def trace_id_of(traceparent: str | None) -> str:
    """The trace id of a W3C `traceparent` header; "" without a valid one."""
    if not traceparent:
        return ""
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    if match is None or match.group(1) == _NO_TRACE or traceparent.startswith("ff"):
        return ""
    return match.group(1)


def correlation_id_of(value: str | None) -> str:
    """The client's correlation id when it is a sane one, else a new one."""
    if value and len(value) <= MAX_CORRELATION_ID and value.isprintable():
        return value
    return str(random_uuid())


def operation_of(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation of `document` that `name` names, or its only one when `name` is None (None
    when it names none, or without a name when there are several)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


def operation_name_of(query: str | None) -> str:
    """The name of the document's only operation ("" when it has none, or several)."""
    if not query:
        return ""
    try:
        document = parse(query)
    except GraphQLError:
        return ""
    operation = operation_of(document, None)
    return operation.name.value if operation is not None and operation.name else ""


@dataclass(slots=True, kw_only=True)
class RequestRecord:
    """What the request log says of one request, filled in as the request runs."""

    transport: str
    correlation_id: str
    # The request's W3C `traceparent` header: its trace id is the line's unless a span of ours
    # is current when the line is written (tracing on). Read only when the line is written.
    traceparent: str | None = None
    operation: str = ""
    outcome: str = ""
    # The document, when the layers that parse it may not report its operation's name (a
    # shared subscription runs once for all its subscribers): read only when the line is written.
    query: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def log(self, status: int | None = None) -> None:
        """Count the request in the metrics, and write its line (when DEBUG is on)."""
        seconds = time.perf_counter() - self.started
        operation = self.operation or operation_name_of(self.query)
        outcome = self.outcome
        if not outcome:
            outcome = "ok" if status is None or 0 < status < 400 else f"http_{status}"
        observe_request(self.transport, operation, outcome, seconds)
        if not logger.isEnabledFor(logging.DEBUG):
            return
        logger.debug(
            "event=request transport=%s correlation_id=%s trace_id=%s operation=%s outcome=%s "
            "status=%s duration_ms=%.2f",
            self.transport,
            self.correlation_id,
            current_trace_id() or trace_id_of(self.traceparent),
            operation,
            outcome,
            "" if status is None else status,
            seconds * 1000,
        )


_current: ContextVar[RequestRecord | None] = ContextVar("request_record", default=None)


@contextmanager
def current_request(record: RequestRecord) -> Iterator[RequestRecord]:
    """Makes `record` the current task's request while the block runs."""
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)


def note_outcome(code: str) -> None:
    """The current request's outcome, unless an earlier error named one."""
    record = _current.get()
    if record is not None and not record.outcome:
        record.outcome = code


def _code_of(error: object) -> str:
    extensions = error.get("extensions") if isinstance(error, Mapping) else None
    if isinstance(error, GraphQLError):
        extensions = error.extensions
    code = extensions.get("code") if isinstance(extensions, Mapping) else None
    return code if isinstance(code, str) and code else "error"


def note_errors(errors: Sequence[object] | None) -> None:
    """The current request's outcome from the errors it answered (the first one's code)."""
    if errors:
        note_outcome(_code_of(errors[0]))


def note_message(message: Mapping[str, object]) -> None:
    """The outcome from a websocket protocol message about to be sent (a result with errors, or
    an `error` message)."""
    payload = message.get("payload")
    if message.get("type") == "error":
        note_errors(payload if isinstance(payload, list) else [payload])
    elif isinstance(payload, Mapping):
        errors = payload.get("errors")
        note_errors(errors if isinstance(errors, list) else None)


class RequestLogExtension(SchemaExtension):
    """Notes the operation's name (the one given, else the document's) for the request log."""

    def on_operation(self) -> Iterator[None]:
        """After the operation, when its name is known."""
        yield
        note_operation(self.execution_context.operation_name or "")


def note_operation(name: str) -> None:
    """The current request's operation name, unless one is noted already."""
    record = _current.get()
    if record is not None and not record.operation:
        record.operation = name
