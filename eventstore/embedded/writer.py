"""Group commit: one thread owns the write connection and commits every waiting write together.

While one transaction is being made durable (the fsync dominates), the next appends queue up; the
writer then takes all of them into one transaction, each in its own savepoint so a failed
expectation fails only its own append (a write alone in its transaction needs none). Throughput
therefore grows with concurrency instead of collapsing to one fsync per command. Nothing is
acknowledged before its COMMIT returns. The writer never waits for company: a lone caller's write
is committed as soon as the thread takes it.

A caller may give up waiting after a deadline (`submit`'s `give_up_after`, STORE_TIMEOUT): one
timer per event loop watches every waiting write (`_Deadlines`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from eventstore.embedded.schema import connect
from eventstore.port import EventStoreError, StoreUnavailable
from eventstore.rows import to_micros
from metrics.instruments import COMMIT_WRITES

logger = logging.getLogger(__name__)

COMMIT_WRITES_EMBEDDED = COMMIT_WRITES.labels("embedded")

T = TypeVar("T")

WriteOp = Callable[[sqlite3.Connection, int], Any]
"""A write run inside the batch transaction: (connection, recorded_at in UTC micros) -> result."""

MAX_BATCH = 1000


@dataclass(slots=True, kw_only=True)
class _Pending:
    op: WriteOp
    future: asyncio.Future[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterStats:
    """How many transactions committed how many writes (the group-commit factor)."""

    commits: int
    writes: int


class _Deadlines:
    """When the writes awaited on one event loop give up: one timer for all of them.

    `asyncio.timeout` around each write arms and cancels a timer per call, about a tenth of a
    lone caller's command on the event loop; here a write costs an append to a deque, and the
    timer fires only when the oldest write still waiting is due. A write given up on may still
    commit: only the wait ends (as with every deadline, `eventstore.deadline`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._waiting: deque[tuple[float, float, asyncio.Future[Any]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, future: asyncio.Future[Any], timeout: float) -> None:
        """Fail `future` with StoreUnavailable unless it is done within `timeout` seconds."""
        waiting = self._waiting
        while waiting and waiting[0][2].done():
            waiting.popleft()  # answered: most writes are by the time the next one comes
        due = self.loop.time() + timeout
        waiting.append((due, timeout, future))
        if self._timer is None:
            self._timer = self.loop.call_at(due, self._expire)

    def _expire(self) -> None:
        self._timer = None
        # A timer may fire a hair early (the loop's clock resolution): that counts as due.
        now = self.loop.time() + 0.001
        still: deque[tuple[float, float, asyncio.Future[Any]]] = deque()
        for due, timeout, future in self._waiting:
            if future.done():
                continue
            if due <= now:
                future.set_exception(
                    StoreUnavailable(
                        f"the event store did not answer within {timeout:g} s (STORE_TIMEOUT)"
                    )
                )
            else:
                still.append((due, timeout, future))
        self._waiting = still
        if still:
            self._timer = self.loop.call_at(min(due for due, _, _ in still), self._expire)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; its write is committed regardless
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class GroupCommitWriter:
    """The single writer of the SQLite file. `on_commit` runs in the writer thread after each
    durable commit.

    The thread never dies of one bad write: an unexpected exception fails that write (or its
    batch) and the loop goes on with a fresh connection if needed. Should the thread end anyway,
    every pending and later write fails with StoreUnavailable instead of waiting forever, and
    `write_error` says so (the health check reports it)."""

    def __init__(self, path: Path, on_commit: Callable[[], None]) -> None:
        self._path = path
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._closed = False
        self._dead: str | None = None
        self._in_flight: list[_Pending] = []
        self._commits = 0
        self._writes = 0
        self._last_outcome: tuple[float, str | None] = (time.monotonic(), None)
        self._deadlines: _Deadlines | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    @property
    def stats(self) -> WriterStats:
        """Commits and writes so far."""
        return WriterStats(commits=self._commits, writes=self._writes)

    @property
    def last_outcome(self) -> tuple[float, str | None]:
        """When the last batch ended (monotonic seconds) and why it failed (None: committed)."""
        if self._dead is not None:
            return time.monotonic(), self._dead
        return self._last_outcome

    async def submit(self, op: WriteOp, give_up_after: float | None = None) -> Any:
        """Run `op` in the next batch; its result once the batch is durable. Past `give_up_after`
        seconds (None: no limit) the wait ends with StoreUnavailable; the write may still
        commit."""
        if self._closed:
            raise StoreUnavailable("the event store is closed")
        if self._dead is not None:
            raise StoreUnavailable(self._dead)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if give_up_after is not None:
            deadlines = self._deadlines
            if deadlines is None or deadlines.loop is not loop:
                deadlines = self._deadlines = _Deadlines(loop)
            deadlines.watch(future, give_up_after)
        # The put last: the writer it wakes needs the GIL this thread holds until it awaits.
        self._queue.put(_Pending(op=op, future=future))
        if self._dead is not None:  # it died between the check and the put: nobody will answer
            self._fail_queued()
        return await future

    async def close(self) -> None:
        """Commit what is queued, then stop the thread and close the connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as error:  # the thread's last word: said and answered, not lost
            self._dead = f"the event store's writer stopped: {error!r}"
            logger.critical("event=writer_died error=%r", error, exc_info=True)
            failure = StoreUnavailable(self._dead)
            for pending in self._in_flight:
                _answer(pending, None, failure)
            self._fail_queued()

    def _fail_queued(self) -> None:
        failure = StoreUnavailable(self._dead or "the event store's writer stopped")
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                return
            if pending is not None:
                _answer(pending, None, failure)

    def _loop(self) -> None:
        conn = connect(self._path)
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                self._in_flight = batch
                try:
                    self._commit(conn, batch)
                except Exception as error:  # a bug or a broken connection: this batch only
                    logger.exception("event=write_batch_failed writes=%d", len(batch))
                    failure = StoreUnavailable(f"the event store could not commit: {error!r}")
                    for pending in batch:
                        _answer(pending, None, failure)
                    conn = self._reconnect(conn)
                if stop:
                    return
        finally:
            conn.close()

    def _reconnect(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return conn
        except sqlite3.Error:
            conn.close()
            return connect(self._path)

    def _commit(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        recorded_at = to_micros(datetime.now(UTC))
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            if len(batch) == 1:
                # Alone in its transaction (a lone caller's every write), a write needs no
                # savepoint: a refusal rolls the transaction back, and nothing is made durable.
                outcomes.append(_run_write(conn, batch[0].op, recorded_at, "ROLLBACK"))
                if conn.in_transaction:
                    conn.execute("COMMIT")
            else:
                for pending in batch:
                    conn.execute("SAVEPOINT op")
                    outcomes.append(_run_write(conn, pending.op, recorded_at, "ROLLBACK TO op"))
                    conn.execute("RELEASE op")
                conn.execute("COMMIT")
        except sqlite3.Error as error:
            self._note_failure(error, len(batch))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = StoreUnavailable(f"the event store could not commit: {error}")
            outcomes = [(None, failure)] * len(batch)
        else:
            self._commits += 1
            self._writes += len(batch)
            COMMIT_WRITES_EMBEDDED.observe(len(batch))
            if self._last_outcome[1] is not None:
                logger.warning("event=writes_recovered")
            self._last_outcome = (time.monotonic(), None)
        for pending, (outcome, failed) in zip(batch, outcomes, strict=True):
            _answer(pending, outcome, failed)
        try:
            self._on_commit()
        except Exception:
            logger.exception("event=on_commit_failed")

    def _note_failure(self, error: sqlite3.Error, writes: int) -> None:
        """Log a failing write path once when it starts failing, not once per batch."""
        if self._last_outcome[1] is None:
            logger.error("event=writes_failing writes=%d error=%r", writes, error)
        else:
            logger.debug("event=writes_still_failing writes=%d error=%r", writes, error)
        self._last_outcome = (time.monotonic(), f"{type(error).__name__}: {error}")


def _answer(pending: _Pending, outcome: Any, failed: BaseException | None) -> None:
    try:
        pending.future.get_loop().call_soon_threadsafe(_settle, pending.future, outcome, failed)
    except RuntimeError:
        logger.debug("event=write_caller_gone")


def _run_write(
    conn: sqlite3.Connection, op: WriteOp, recorded_at: int, undo: str
) -> tuple[Any, BaseException | None]:
    """Run one write; a refusal or a bug in it runs `undo` (rolling back this write only) and
    becomes its outcome. An error of the transaction itself (disk full, I/O) is raised: the batch
    fails."""
    try:
        return op(conn, recorded_at), None
    except (EventStoreError, ValueError) as refused:
        conn.execute(undo)
        return None, refused
    except sqlite3.IntegrityError as broken:
        # A bug, not the caller's fault; still, only this write fails.
        logger.exception("event=write_rejected reason=constraint")
        conn.execute(undo)
        return None, EventStoreError(str(broken))
    except sqlite3.Error:
        raise
    except Exception as bug:
        logger.exception("event=write_failed_unexpectedly")
        conn.execute(undo)
        return None, EventStoreError(f"the write failed: {bug!r}")
