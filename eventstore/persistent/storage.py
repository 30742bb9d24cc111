"""What a store provides to keep its persistent-subscription groups: definitions, checkpoints and
parked events."""

from __future__ import annotations

from typing import Protocol

from eventstore.persistent.records import GroupDefinition, GroupRecord
from eventstore.port import RecordedEvent


class GroupStorage(Protocol):
    """Durable group state.

    A running group's two writes, `park` and `save_checkpoint`, are called from the event loop
    and must not block it: they are queued, stored in the order they were made (a park before the
    checkpoint that passes it, so a crash in between redelivers the event rather than losing it),
    retried until stored, and never raise. The queries see every write queued before them.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def park(self, group: str, stream: str | None, events: list[RecordedEvent]) -> None: ...

    def save_checkpoint(self, group: str, stream: str | None, checkpoint: int) -> None: ...

    async def insert_group(self, record: GroupRecord) -> bool: ...

    async def update_group(self, definition: GroupDefinition) -> None: ...

    async def delete_group(self, group: str, stream: str | None) -> bool: ...

    async def get_group(self, group: str, stream: str | None) -> GroupRecord | None: ...

    async def list_groups(self, stream: str | None, *, every_stream: bool) -> list[GroupRecord]: ...

    async def count_parked(self, group: str, stream: str | None) -> int: ...

    async def list_parked(
        self, group: str, stream: str | None, limit: int | None
    ) -> list[RecordedEvent]: ...

    async def take_parked(self, group: str, stream: str | None) -> list[RecordedEvent]: ...
