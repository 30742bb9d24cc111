"""The command handler: load the order, let the domain decide, append what it decided expecting the
version loaded, and on a conflict do it all again.

With an `expected_version` from the client a conflict is the client's answer
(`ConcurrencyConflict`, nothing written). Without one the handler tries again a few times, because
the client asked for the command on whatever the order is now.

A keyed `placeOrder` proposes the same ids on every retry (`application.idempotency`), so the
store's own idempotence answers a retry with the original result; `application.placements` finds
the original where the store does not.

Metadata: `$correlationId` and `$causationId` are the request's correlation id (one request
carries one command, and commands are not stored as messages of their own).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from application.codec import SYSTEM_ACTOR, EventContext, encode
from application.idempotency import IdempotencyIds
from application.placements import KeyedPlacements
from application.repository import NEW_ORDER, LoadedOrder, Orders
from application.snapshot_taker import Snapshotter
from application.written import Accepted, WrittenOrder, as_stored
from domain.commands import Command, PlaceOrder
from domain.decide import check_owner, decide
from domain.errors import ConcurrencyConflict, OrderAlreadyExists, ValidationFailed
from domain.events import OrderEvent
from domain.order import fold
from domain.validation import validate
from eventstore.port import EventStore, WrongExpectedVersion
from metrics.instruments import count_command, count_conflict, count_retry
from telemetry.tracing import current_traceparent, span

__all__ = ["MAX_ATTEMPTS", "Accepted", "CommandHandler"]

MAX_ATTEMPTS = 5
"""Loads and decisions per command without an expected version before giving up on a busy order."""


def _now() -> datetime:
    return datetime.now(UTC)


class CommandHandler:
    """Handles commands; safe to call concurrently."""

    def __init__(
        self,
        store: EventStore,
        orders: Orders,
        clock: Callable[[], datetime] = _now,
        snapshotter: Snapshotter | None = None,
        ids: IdempotencyIds | None = None,
    ) -> None:
        self._orders = orders
        self._clock = clock
        self._snapshotter = snapshotter
        # The composition root passes the deployment's; a secret of this handler's own serves
        # tests and tools, whose retries all come to this one handler.
        self._ids = ids if ids is not None else IdempotencyIds.random()
        self._placements = KeyedPlacements(store, self._ids)

    def new_order_id(self, customer_id: str, idempotency_key: str | None) -> str:
        """The id of an order placed without one: derived from the key when there is one (so a
        retry names the same order), else random."""
        return self._ids.new_order_id(customer_id, idempotency_key)

    async def handle(
        self,
        command: Command,
        *,
        expected_version: int | None,
        actor: str,
        correlation_id: str,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """Decide and append `command`. Raises the domain's refusals (`ValidationFailed`,
        `OrderNotFound`, `OrderAlreadyExists`, `InvalidTransition`, `ConcurrencyConflict`,
        `NotOrderOwner`)."""
        kind = type(command).__name__
        try:
            with span(f"command {kind}"):
                accepted = await self._handle(
                    command, expected_version, idempotency_key, actor, correlation_id
                )
        except Exception as error:
            count_command(kind, error)
            raise
        count_command(kind, None)
        return accepted

    async def _handle(
        self,
        command: Command,
        expected_version: int | None,
        key: str | None,
        actor: str,
        correlation_id: str,
    ) -> Accepted:
        command = _checked(command, expected_version, key)
        if key is not None and isinstance(command, PlaceOrder):
            legacy = await self._placements.legacy(command, key)
            if legacy is not None:
                return legacy
        for attempt in range(1, MAX_ATTEMPTS + 1):
            # A placement is first decided on no order: the append's expectation checks that.
            placing = isinstance(command, PlaceOrder) and attempt == 1
            loaded = NEW_ORDER if placing else await self._orders.load(command.order_id)
            try:
                return await self._attempt(
                    command, loaded, expected_version, key, actor, correlation_id
                )
            except WrongExpectedVersion as conflict:
                count_conflict(type(command).__name__)
                if expected_version is not None or attempt == MAX_ATTEMPTS:
                    expected = loaded.version if expected_version is None else expected_version
                    raise ConcurrencyConflict(expected, conflict.actual or 0) from conflict
                count_retry(type(command).__name__)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _attempt(
        self,
        command: Command,
        loaded: LoadedOrder,
        expected_version: int | None,
        key: str | None,
        actor: str,
        correlation_id: str,
    ) -> Accepted:
        """Decide `command` on `loaded` and append. Raises `WrongExpectedVersion` when the
        order moved on since it was loaded."""
        # Ownership before the version check: a conflict would tell another customer's version.
        check_owner(loaded.state, command)
        if expected_version is not None and expected_version != loaded.version:
            raise ConcurrencyConflict(expected_version, loaded.version)
        if key is not None and loaded.state is not None:
            original = await self._placements.original(command.order_id, key, _placer(command))
            if original is None:
                raise OrderAlreadyExists(command.order_id)
            return original
        events = decide(loaded.state, command)
        context = EventContext(
            correlation_id=correlation_id,
            causation_id=correlation_id,
            actor=actor or SYSTEM_ACTOR,
            occurred_at=self._clock(),  # each attempt decides anew, so its events happen now
            traceparent=current_traceparent(),
        )
        return await self._append(command, loaded, events, context, key)

    async def _append(
        self,
        command: Command,
        loaded: LoadedOrder,
        events: tuple[OrderEvent, ...],
        context: EventContext,
        key: str | None,
    ) -> Accepted:
        order_id = command.order_id
        ids = self._ids.event_ids(len(events), order_id, key, _placer(command))
        new_events = [encode(e, context, i) for e, i in zip(events, ids, strict=True)]
        version = loaded.version + len(events)
        moment = as_stored(context.occurred_at)
        placed_at = moment if loaded.state is None else loaded.placed_at
        snapshot = self._snapshotter is not None and self._snapshotter.due(
            order_id, loaded, version
        )
        written: WrittenOrder | None = None
        after: LoadedOrder | None = None
        state = fold(events, loaded.state)
        # A keyed placement may be answered with an earlier one's result: its order is unknown.
        if key is None and state is not None:
            written = WrittenOrder(state=state, placed_at=placed_at, updated_at=moment)
            snapshot_version = version if snapshot else loaded.snapshot_version
            after = LoadedOrder(
                state=state, version=version, snapshot_version=snapshot_version, placed_at=placed_at
            )
        result = await self._orders.append(order_id, loaded.version, new_events, after)
        if snapshot and self._snapshotter is not None:
            self._snapshotter.take(order_id, result.version)
        return Accepted(
            order_id=order_id,
            version=result.version,
            position=result.position,
            event_ids=tuple(ids),
            order=written,
        )


def _checked(command: Command, expected_version: int | None, key: str | None) -> Command:
    """The command with its input rules applied, before anything is read: a bad order id must
    never become a stream name. `decide` takes the command as validated here."""
    command = validate(command)
    if expected_version is not None and expected_version < 0:
        raise ValidationFailed("expectedVersion must be >= 0", "expectedVersion")
    if key is not None and not isinstance(command, PlaceOrder):
        raise ValidationFailed("only placeOrder takes an idempotency key", "idempotencyKey")
    if key is not None and not 1 <= len(key) <= 200:
        raise ValidationFailed("idempotencyKey must be 1 to 200 characters", "idempotencyKey")
    return command


def _placer(command: Command) -> str:
    """The customer a placement is for ("" for other commands: their ids are never keyed)."""
    return command.customer_id if isinstance(command, PlaceOrder) else ""
