"""A running group's progress: the events it has settled (acked, parked or skipped), the checkpoint
before which every event read is settled, and when that checkpoint is handed to the storage.

Events settle out of their read order (retries, several consumers, timeouts), so the checkpoint
moves only over a run of settled events at the front of what was read.
"""

from __future__ import annotations

import asyncio
from collections import deque

from eventstore.persistent.records import GroupRecord
from eventstore.persistent.storage import GroupStorage
from eventstore.port import RecordedEvent


class GroupProgress:
    """The checkpoint of one running group, and its writes (parks, checkpoints) to the storage.

    Keys are the places events are counted at: positions for $all, versions for a stream."""

    def __init__(
        self, record: GroupRecord, tables: GroupStorage, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._record = record
        self._tables = tables
        self._loop = loop
        self._pending: deque[int] = deque()  # keys in read order, not yet passed by the checkpoint
        self._finished: set[int] = set()  # keys settled ahead of older ones
        self._done_upto = record.checkpoint
        self._saved = record.checkpoint
        self._unsaved_count = 0
        self._saved_at = loop.time()

    def resume(self, record: GroupRecord) -> None:
        """Go on from `record`'s checkpoint and with its settings."""
        self._record = record
        self._done_upto = self._saved = record.checkpoint

    @property
    def saved(self) -> int | None:
        """The last checkpoint handed to the storage."""
        return self._saved

    def read(self, key: int) -> None:
        """An event was read into the group: the checkpoint cannot pass it until it settles."""
        self._pending.append(key)

    def settle(self, key: int) -> None:
        """The event read at `key` is acked, parked or skipped."""
        self._finished.add(key)
        while self._pending and self._pending[0] in self._finished:
            done = self._pending.popleft()
            self._finished.discard(done)
            self._done_upto = done
            self._unsaved_count += 1
        if self._unsaved_count >= self._record.settings.max_checkpoint_count:
            self.save()

    def park(self, events: list[RecordedEvent]) -> None:
        """Park `events`: queued by the storage, stored before any checkpoint that passes them."""
        self._tables.park(self._record.group, self._record.stream, events)

    def save(self) -> None:
        """Hand the checkpoint to the storage if it moved since the last time."""
        if self._done_upto is not None and self._done_upto != self._saved:
            self._tables.save_checkpoint(self._record.group, self._record.stream, self._done_upto)
            self._saved = self._done_upto
        self._unsaved_count = 0
        self._saved_at = self._loop.time()

    def save_if_due(self, now: float) -> None:
        """Save once enough events have settled and `checkpoint_after` has passed since the last
        save, as EventStoreDB's min_checkpoint_count and checkpoint_after have it."""
        settings = self._record.settings
        if (
            self._unsaved_count >= settings.min_checkpoint_count
            and now - self._saved_at >= settings.checkpoint_after
        ):
            self.save()
