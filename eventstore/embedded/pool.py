"""Reader connections: each read runs in a worker thread inside one read transaction, so the
queries of one read see one snapshot of the log."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from eventstore.embedded.schema import connect
from eventstore.port import StoreUnavailable

T = TypeVar("T")


class ReaderPool:
    """Connections created on demand and reused; WAL lets them read while the writer commits."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False

    async def run(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """Run `read` on a connection in a worker thread, within one read transaction."""
        if self._closed:
            raise StoreUnavailable("the event store is closed")
        return await asyncio.to_thread(self._run, read)

    def run_here(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """Run `read` on the calling thread (the event loop's): only for reads so short that the
        hop to a worker thread and back would cost more than the read itself."""
        if self._closed:
            raise StoreUnavailable("the event store is closed")
        return self._run(read)

    def _run(self, read: Callable[[sqlite3.Connection], T]) -> T:
        try:
            conn = self._acquire()
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(f"the event store cannot be opened: {error}") from error
        reusable = True
        try:
            conn.execute("BEGIN")
            try:
                return read(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.OperationalError as error:
            # The file, not the query (I/O error, locked, unreadable): an outage, retryable.
            # The connection may be in any state: it is not reused.
            reusable = False
            conn.close()
            raise StoreUnavailable(f"the event store cannot be read: {error}") from error
        finally:
            if reusable:
                self._release(conn)

    def _acquire(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the event store is closed")
            if self._idle:
                return self._idle.pop()
        return connect(self._path)

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        # Closed while this read was running: the read owns the last reference.
        conn.close()

    def close(self) -> None:
        """Close idle connections now; reads in flight close theirs when they finish."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
