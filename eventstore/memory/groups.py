"""The in-memory store's persistent-subscription state: group records and parked events in dicts.

Writes happen at once, so a query always sees every park and checkpoint made before it, as
`GroupStorage` requires.
"""

from __future__ import annotations

from dataclasses import replace

from eventstore.persistent.records import GroupDefinition, GroupRecord, stream_key
from eventstore.port import RecordedEvent

_Key = tuple[str, str]


class MemoryGroupStorage:
    """The `GroupStorage` of `InMemoryEventStore`."""

    def __init__(self) -> None:
        self._groups: dict[_Key, GroupRecord] = {}
        self._parked: dict[_Key, list[RecordedEvent]] = {}

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close: the state lives as long as the store object."""

    def park(self, group: str, stream: str | None, events: list[RecordedEvent]) -> None:
        """Append events to the group's parked list."""
        self._parked.setdefault((stream_key(stream), group), []).extend(events)

    def save_checkpoint(self, group: str, stream: str | None, checkpoint: int) -> None:
        """Record that everything up to `checkpoint` (inclusive) is done."""
        key = (stream_key(stream), group)
        record = self._groups.get(key)
        if record is not None:
            self._groups[key] = replace(record, checkpoint=checkpoint)

    async def insert_group(self, record: GroupRecord) -> bool:
        """Store a new group; False if one of that name exists."""
        key = (stream_key(record.stream), record.group)
        if key in self._groups:
            return False
        self._groups[key] = record
        return True

    async def update_group(self, definition: GroupDefinition) -> None:
        """Replace a group's settings and start point; its checkpoint stays."""
        key = (stream_key(definition.stream), definition.group)
        record = self._groups.get(key)
        if record is not None:
            self._groups[key] = replace(
                record, settings=definition.settings, start_after=definition.start_after
            )

    async def delete_group(self, group: str, stream: str | None) -> bool:
        """Remove a group and its parked events; False if it did not exist."""
        key = (stream_key(stream), group)
        self._parked.pop(key, None)
        return self._groups.pop(key, None) is not None

    async def get_group(self, group: str, stream: str | None) -> GroupRecord | None:
        """One group, or None."""
        return self._groups.get((stream_key(stream), group))

    async def list_groups(self, stream: str | None, *, every_stream: bool) -> list[GroupRecord]:
        """The groups on `stream` ($all when None), or on every target when `every_stream`."""
        target = stream_key(stream)
        return [
            record
            for key, record in sorted(self._groups.items())
            if every_stream or key[0] == target
        ]

    async def count_parked(self, group: str, stream: str | None) -> int:
        """How many events the group has parked."""
        return len(self._parked.get((stream_key(stream), group), []))

    async def list_parked(
        self, group: str, stream: str | None, limit: int | None
    ) -> list[RecordedEvent]:
        """The group's parked events, oldest parking first."""
        parked = self._parked.get((stream_key(stream), group), [])
        return list(parked if limit is None else parked[:limit])

    async def take_parked(self, group: str, stream: str | None) -> list[RecordedEvent]:
        """Remove and return every parked event of the group."""
        return self._parked.pop((stream_key(stream), group), [])
