"""Group commit on PostgreSQL: one writer task per process, one transaction per batch, every batch
serialised on one advisory lock.

Why positions can be trusted: a batch takes `POSITION_LOCK` (transaction-level) before it assigns
any position, assigns `max(position) + 1, ...`, and keeps the lock until its COMMIT has finished.
PostgreSQL makes a transaction visible before it releases its locks, so the next batch (of this
process or any other) can only assign positions after every smaller position is visible. Hence any
snapshot sees a prefix of the log: a reader that has seen position p will never later find a new
event below p. A sequence gives no such promise (a transaction can take 10, another 11, and commit
11 first).

Serialising alone would cost one commit (an fsync) per append; the writer instead takes every
append waiting in its queue into the same transaction, so the number of appends per commit grows
with the load. The batch's consecutive appends go in one round trip (`es_append_batch`), which
checks each expectation and writes nothing for a refused append, so one refusal never spoils its
batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from eventstore.outage_log import OUTAGES
from eventstore.port import AppendResult, EventStoreError, StoreUnavailable
from eventstore.postgres import operations
from eventstore.postgres.schema import NOTIFY_CHANNEL, POSITION_LOCK
from eventstore.postgres.stale import EndedConnection, explained, never_started
from metrics.instruments import COMMIT_WRITES

logger = logging.getLogger(__name__)

COMMIT_WRITES_POSTGRES = COMMIT_WRITES.labels("postgres")

WriteOp = Callable[[Any, datetime], Awaitable[Any]]
"""A write inside the batch transaction: (connection, recorded_at) -> result."""

MAX_BATCH = 500


@dataclass(slots=True, kw_only=True)
class _Pending:
    op: WriteOp | None  # None: `append` says what to write
    future: asyncio.Future[Any]
    append: operations.Append | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterStats:
    """How many transactions committed how many writes (the group-commit factor)."""

    commits: int
    writes: int


class GroupCommitWriter:
    """The writer of one process. `on_commit` runs after each commit (local subscribers wake at
    once; other processes wake on the NOTIFY sent inside the transaction)."""

    def __init__(self, pool: Any, on_commit: Callable[[], None], origin: str = "") -> None:
        self._pool = pool
        self._origin = origin
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._commits = 0
        self._writes = 0

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._loop(), name="postgres-writer")

    @property
    def stats(self) -> WriterStats:
        """Commits and writes so far."""
        return WriterStats(commits=self._commits, writes=self._writes)

    async def submit(self, op: WriteOp) -> Any:
        """Run `op` in the next batch; its result once the batch has committed."""
        return await self._submit(_Pending(op=op, future=self._future()))

    async def append(self, append: operations.Append) -> AppendResult:
        """Append in the next batch (consecutive appends share one round trip); the result once
        the batch has committed."""
        result: AppendResult = await self._submit(
            _Pending(op=None, append=append, future=self._future())
        )
        return result

    def _future(self) -> asyncio.Future[Any]:
        if self._closed:
            raise StoreUnavailable("the event store is closed")
        return asyncio.get_running_loop().create_future()

    async def _submit(self, pending: _Pending) -> Any:
        self._queue.put_nowait(pending)
        return await pending.future

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            await self._commit(batch)
            if stop:
                return

    async def _run_batch(self, batch: list[_Pending]) -> list[tuple[Any, BaseException | None]]:
        """The batch in one transaction; again on a fresh connection when the one it got had
        been ended by the server while idle in the pool (`eventstore.postgres.stale`)."""
        # every idle connection of the pool may have been ended at once: one more attempt than
        # the pool holds finds a fresh one (a refused attempt costs no round trip)
        attempts = self._pool.get_max_size() + 1
        for attempt in range(attempts):
            try:
                return await self._run_batch_once(batch)
            except EndedConnection as ended:
                if attempt == attempts - 1:
                    raise ended.__cause__ or ended from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _run_batch_once(
        self, batch: list[_Pending]
    ) -> list[tuple[Any, BaseException | None]]:
        committed: list[tuple[Any, BaseException | None]] | None = None
        try:
            async with self._pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        outcomes = await self._write(conn, batch)
                except (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError) as error:
                    conn.terminate()  # broken mid-protocol: never reused, a fresh one instead
                    if never_started(error):
                        # Refused before it was sent, COMMIT included, and the server rolled the
                        # session back when it ended it: nothing of the batch is committed.
                        raise EndedConnection() from error
                    raise
                committed = outcomes
        except (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError):
            if committed is None:
                raise
            # The COMMIT was answered; only returning the connection to the pool failed (the
            # server ended the session right after): the pool drops it, the batch stands.
        assert committed is not None
        return committed

    async def _write(
        self, conn: Any, batch: list[_Pending]
    ) -> list[tuple[Any, BaseException | None]]:
        """The batch's writes inside the transaction: each one's result or refusal."""
        recorded_at = datetime.now(UTC)
        outcomes: list[tuple[Any, BaseException | None]] = []
        await conn.execute("SELECT pg_advisory_xact_lock($1)", POSITION_LOCK)
        index = 0
        while index < len(batch):
            pending = batch[index]
            if pending.op is not None:
                try:
                    outcomes.append((await pending.op(conn, recorded_at), None))
                except (EventStoreError, ValueError) as refused:
                    outcomes.append((None, refused))
                index += 1
                continue
            run = []
            while index < len(batch) and batch[index].append is not None:
                run.append(batch[index].append)
                index += 1
            answers = await operations.append_many(
                conn, [a for a in run if a is not None], recorded_at
            )
            outcomes += [(None, a) if isinstance(a, Exception) else (a, None) for a in answers]
        # The payload names this store, whose own subscribers `on_commit` wakes already.
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, self._origin)
        return outcomes

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            outcomes = await self._run_batch(batch)
        except (
            asyncpg.PostgresError,
            OSError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ) as error:
            lost = isinstance(
                error,
                asyncpg.PostgresConnectionError
                | asyncpg.OperatorInterventionError
                | asyncpg.InsufficientResourcesError
                | asyncpg.InternalClientError,
            )
            if len(batch) > 1 and isinstance(error, asyncpg.PostgresError) and not lost:
                # A statement failed mid-batch (a bug, or a constraint): the transaction is gone.
                # Run each write alone so only the culprit fails.
                logger.warning("event=pg_batch_failed writes=%d error=%s", len(batch), error)
                for pending in batch:
                    await self._commit([pending])
                return
            # One line per outage (eventstore.outage_log), not a traceback per failed commit.
            OUTAGES.failed("eventStore", explained(error))
            failure: EventStoreError = StoreUnavailable(
                f"the event store could not commit: {explained(error)}"
            )
            if isinstance(error, asyncpg.IntegrityConstraintViolationError):
                failure = EventStoreError(str(error))
            outcomes = [(None, failure)] * len(batch)
        except Exception as error:
            # Whatever else broke (asyncpg's client state after a killed connection, say), the
            # writer must live on: this batch fails as unavailable, and the next one retries.
            if OUTAGES.failed("eventStore", error):
                logger.error("event=pg_commit_failed writes=%d", len(batch), exc_info=True)
            failure = StoreUnavailable(f"the event store could not commit: {error}")
            outcomes = [(None, failure)] * len(batch)
        else:
            self._commits += 1
            self._writes += len(batch)
            OUTAGES.recovered("eventStore")
            COMMIT_WRITES_POSTGRES.observe(len(batch))
        for pending, (outcome, failed) in zip(batch, outcomes, strict=True):
            if pending.future.done():  # the caller was cancelled; the write stands regardless
                continue
            if failed is not None:
                pending.future.set_exception(failed)
            else:
                pending.future.set_result(outcome)
        self._on_commit()
