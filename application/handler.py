"""The application service: load an order, let the domain decide, append what it decided.

Optimistic concurrency: every append expects the version that was read. With an
`expected_version` from the client a mismatch is the client's answer (`ConcurrencyConflict`,
nothing written). Without one the handler re-reads and decides again a few times, because the
client asked for the command on whatever the order is now.

Idempotent `placeOrder`: with an idempotency key the order id (when not given) and every event id
derive from the key and the customer under the deployment's secret (`application.idempotency`),
so a retry proposes byte-for-byte the same append and the store's own idempotence answers it
with the original result. A retry of an order placed under the older public derivation is found
by its legacy ids and answered the same way.

Metadata: `$correlationId` is the request's correlation id; `$causationId` is the id of the command
that caused the events. Commands are not stored as messages of their own, so the command's id is
the request's correlation id (one request carries one command); every event of one command shares
it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson

from application.codec import SYSTEM_ACTOR, EventContext, decode_record, encode
from application.idempotency import IdempotencyIds, legacy_event_id, legacy_order_id
from application.repository import LoadedOrder, Orders
from application.snapshotter import Snapshotter
from application.written import WrittenOrder, as_stored, placed_by
from domain.commands import Command, PlaceOrder
from domain.decide import decide
from domain.errors import ConcurrencyConflict, DomainError, OrderAlreadyExists, ValidationFailed
from domain.events import order_stream
from domain.order import OrderState, fold
from domain.validation import validate
from eventstore.port import (
    AppendResult,
    EventStore,
    ExpectedVersion,
    NewEvent,
    WrongExpectedVersion,
    expect_version,
)
from metrics.instruments import APPEND_DURATION, count_command, count_conflict, count_retry
from telemetry.tracing import current_traceparent, traced

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""Reads and decisions per command without an expected version before giving up on a busy order."""


def _now() -> datetime:
    return datetime.now(UTC)


def _placing_customer(command: Command) -> str | None:
    return command.customer_id if isinstance(command, PlaceOrder) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """A command's events are durably appended: the order's new version and the last position.

    `order` is the order as the command left it, folded at `version`. It is None only for a
    placement with an idempotency key: the store may have answered the append with an earlier
    one's result, whose events (and moments) only the stream knows (`OrderRepository.placed`).
    """

    order_id: str
    version: int
    position: int
    event_ids: tuple[uuid.UUID, ...]
    order: WrittenOrder | None = None


class _Stale(Exception):
    """A decision made on a guess (or on a state that a conflict proved old) must be made again
    on the state read from the store."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Request:
    """One command as the handler runs it, whatever state it is decided on."""

    command: Command
    stream: str
    expected_version: int | None
    idempotency_key: str | None
    guard: Callable[[OrderState | None], None] | None


class CommandHandler:
    """Handles one command at a time per call; safe to call concurrently.

    One loop: load, decide, append expecting the version loaded, and on a conflict load again.
    The first load may be a guess (`orders` may remember recent orders, and `placeOrder` is
    appended as the stream's first event without reading): a guess that proves stale (the append
    is refused) or that refuses the command is checked against the store, so the answer is
    always the one a fresh read would give.
    """

    def __init__(
        self,
        store: EventStore,
        orders: Orders,
        clock: Callable[[], datetime] = _now,
        snapshotter: Snapshotter | None = None,
        ids: IdempotencyIds | None = None,
    ) -> None:
        self._store = store
        self._orders = orders
        self._clock = clock
        self._snapshotter = snapshotter
        # The composition root passes the deployment's; a secret of this handler's own serves
        # tests and tools, whose retries all come to this one handler.
        self._ids = ids if ids is not None else IdempotencyIds.random()

    def new_order_id(self, customer_id: str, idempotency_key: str | None) -> str:
        """The id of an order placed without one: derived from the key when there is one (so a
        retry names the same order), else random."""
        return self._ids.new_order_id(customer_id, idempotency_key)

    @traced(lambda self, command, **_: f"command {type(command).__name__}")
    async def handle(
        self,
        command: Command,
        *,
        expected_version: int | None,
        actor: str,
        correlation_id: str,
        idempotency_key: str | None = None,
        guard: Callable[[OrderState | None], None] | None = None,
    ) -> Accepted:
        """Decide and append `command`. Raises the domain's errors (`ValidationFailed`,
        `OrderNotFound`, `OrderAlreadyExists`, `InvalidTransition`, `ConcurrencyConflict`).

        `guard`, when given, sees every state the decision is made on (remembered or loaded)
        before the decision and may raise (the API uses it so a customer only ever acts on its
        own order, whatever happened since the permission check). It must judge only what never
        changes in an order (who placed it): its refusal of a remembered state is final."""
        kind = type(command).__name__
        try:
            accepted = await self._handle(
                command,
                expected_version=expected_version,
                actor=actor,
                correlation_id=correlation_id,
                idempotency_key=idempotency_key,
                guard=guard,
            )
        except Exception as error:
            count_command(kind, error)
            raise
        count_command(kind, None)
        return accepted

    async def _handle(
        self,
        command: Command,
        *,
        expected_version: int | None,
        actor: str,
        correlation_id: str,
        idempotency_key: str | None,
        guard: Callable[[OrderState | None], None] | None,
    ) -> Accepted:
        # Input rules first, once: a bad order id must never become a stream name, not even to
        # read. `decide` takes the command as validated here.
        command = validate(command)
        if expected_version is not None and expected_version < 0:
            raise ValidationFailed("expectedVersion must be >= 0", "expectedVersion")
        if idempotency_key is not None and not isinstance(command, PlaceOrder):
            raise ValidationFailed("only placeOrder takes an idempotency key", "idempotencyKey")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
            raise ValidationFailed("idempotencyKey must be 1 to 200 characters", "idempotencyKey")
        request = _Request(
            command=command,
            stream=order_stream(command.order_id),
            expected_version=expected_version,
            idempotency_key=idempotency_key,
            guard=guard,
        )
        context = EventContext(
            correlation_id=correlation_id,
            causation_id=correlation_id,
            actor=actor or SYSTEM_ACTOR,
            occurred_at=self._clock(),
            traceparent=current_traceparent(),
        )
        if isinstance(command, PlaceOrder):
            if idempotency_key is not None:
                legacy = await self._legacy_placement(command, idempotency_key)
                if legacy is not None:
                    return legacy
            # A placement expects no stream: if the order exists the append says so.
            loaded = LoadedOrder(state=None, version=0, fresh=False)
        else:
            loaded = await self._orders.load(command.order_id, guess=True)
        # A guess costs one attempt more: the reads after it get MAX_ATTEMPTS of their own.
        attempts = MAX_ATTEMPTS + (0 if loaded.fresh else 1)
        for attempt in range(1, attempts + 1):
            try:
                return await self._attempt(request, loaded, context, last=attempt == attempts)
            except _Stale:
                count_retry(type(command).__name__)
                # A decision made again is made later than the first: its events happen now.
                context = replace(context, occurred_at=self._clock())
                loaded = await self._orders.load(command.order_id)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    async def _attempt(
        self, request: _Request, loaded: LoadedOrder, context: EventContext, *, last: bool
    ) -> Accepted:
        """Decide `request` on `loaded` and append. A fresh `loaded` was just read from the
        store, so its refusals are the answer; for a guess any doubt raises `_Stale`. Raises
        `_Stale` too after a conflict that deserves another read and decision."""
        order_id = request.command.order_id
        confirmed = loaded.fresh
        if request.guard is not None:
            request.guard(loaded.state)
        expected_version = request.expected_version
        if expected_version is not None and expected_version != loaded.version:
            if not confirmed:
                raise _Stale
            raise ConcurrencyConflict(expected_version, loaded.version)
        if loaded.state is not None and request.idempotency_key is not None:
            if not confirmed:
                raise _Stale
            original = await self._original_placement(
                order_id, request.idempotency_key, _placing_customer(request.command)
            )
            if original is not None:
                return original
            raise OrderAlreadyExists(order_id)
        try:
            events = decide(loaded.state, request.command)
        except DomainError:
            if confirmed:
                raise
            raise _Stale from None
        ids = self._ids.event_ids(
            len(events), order_id, request.idempotency_key, _placing_customer(request.command)
        )
        new_events = [encode(e, context, i) for e, i in zip(events, ids, strict=True)]
        started = time.perf_counter()
        try:
            result = await self._append(request.stream, new_events, expect_version(loaded.version))
        except WrongExpectedVersion as conflict:
            count_conflict(type(request.command).__name__)
            actual = conflict.actual or 0
            if expected_version is not None:
                raise ConcurrencyConflict(expected_version, actual) from conflict
            if confirmed and last:
                raise ConcurrencyConflict(loaded.version, actual) from conflict
            logger.debug(
                "event=append_conflict stream=%s expected=%d actual=%d guess=%s",
                request.stream,
                loaded.version,
                actual,
                not confirmed,
            )
            raise _Stale from conflict
        APPEND_DURATION.observe(time.perf_counter() - started)
        version = loaded.version + len(events)
        if result.version != version and not confirmed:
            # Only an idempotent placement answered with another append's result gets here:
            # let the read path tell the original placement from someone else's order.
            raise _Stale
        state = fold(events, loaded.state)
        occurred_at = as_stored(context.occurred_at)
        keyed = request.idempotency_key is not None
        # A keyed placement's append may have been answered with an earlier one's result.
        placed_at = (None if keyed else occurred_at) if loaded.state is None else loaded.placed_at
        self._remember(order_id, loaded, None if keyed else state, placed_at, result)
        written = None
        if state is not None and state.version == result.version and not keyed:
            written = WrittenOrder(state=state, placed_at=placed_at, updated_at=occurred_at)
        return Accepted(
            order_id=order_id,
            version=result.version,
            position=result.position,
            event_ids=tuple(ids),
            order=written,
        )

    @traced(lambda *_: "append")
    async def _append(
        self, stream: str, events: list[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        """The store's append (its own span when tracing is on)."""
        return await self._store.append(stream, events, expected)

    def _remember(
        self,
        order_id: str,
        loaded: LoadedOrder,
        state: OrderState | None,
        placed_at: datetime | None,
        result: AppendResult,
    ) -> None:
        """Schedule a due snapshot, and keep the order as appended for the next command."""
        snapshot_version = loaded.snapshot_version
        if self._snapshotter is not None and self._snapshotter.after_append(
            order_id, loaded, result.version
        ):
            # Best-effort, in the background; remembering it keeps the next commands from
            # asking for another one before the policy's interval has passed again.
            snapshot_version = result.version
        if state is None or state.version != result.version:
            # Not known to be the append decided on `loaded`: a keyed placement may have been
            # answered with an earlier one's result, whose items may differ. No guess.
            self._orders.appended(order_id, None)
            return
        self._orders.appended(
            order_id,
            LoadedOrder(
                state=state,
                version=result.version,
                snapshot_version=snapshot_version,
                placed_at=placed_at,
            ),
        )

    async def _original_placement(
        self, order_id: str, idempotency_key: str, customer_id: str | None
    ) -> Accepted | None:
        """The result of the append that placed the order under this key for this customer, if
        it did."""
        first = await self._store.read_stream(order_stream(order_id), from_version=1, limit=1)
        if not first:
            return None
        placed = first[0]
        keyed = placed.id == self._ids.event_ids(1, order_id, idempotency_key, customer_id)[0]
        # The legacy ids' encoding is ambiguous across customers: the order must be theirs too.
        legacy = placed.id == legacy_event_id(order_id, idempotency_key, customer_id) and (
            _placed_for(placed.data) == customer_id
        )
        if not (keyed or legacy):
            return None
        # placeOrder appends exactly one event, so the original append ended at version 1.
        return Accepted(
            order_id=order_id,
            version=1,
            position=placed.position,
            event_ids=(placed.id,),
            order=placed_by(decode_record(placed)),
        )

    async def _legacy_placement(self, command: PlaceOrder, idempotency_key: str) -> Accepted | None:
        """The original result of a placement under this key that took its order id from the
        public derivation (before ids were keyed), when this command's id is the derived one."""
        customer_id = command.customer_id
        if command.order_id != self._ids.new_order_id(customer_id, idempotency_key):
            return None  # the client named the order: the append and its replay check suffice
        legacy_id = legacy_order_id(customer_id, idempotency_key)
        return await self._original_placement(legacy_id, idempotency_key, customer_id)


def _placed_for(data: bytes) -> object:
    """The customer an `OrderPlaced` event's data names (any schema version)."""
    try:
        decoded = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return decoded.get("customerId") if isinstance(decoded, dict) else None
