"""Upcasting: reading events written in older shapes in today's shape, without rewriting the log.

Every read path decodes through `eventstore.codec`, which calls `upcast` here: the one place where
old shapes become current ones.
"""

from __future__ import annotations

from typing import Any

CURRENT_SCHEMA_VERSION = 2


class UnknownSchemaVersion(Exception):
    """An event of a known type written by newer code than this: never guessed at."""

    def __init__(self, event_type: str, schema_version: int) -> None:
        self.event_type = event_type
        self.schema_version = schema_version
        super().__init__(
            f"{event_type} at schema version {schema_version} is newer than this code knows "
            f"(current: {CURRENT_SCHEMA_VERSION})"
        )


def upcast(
    event_type: str, schema_version: int, data: dict[str, Any], *, stream: str
) -> dict[str, Any]:
    """`data` of an event written at `schema_version`, in the current schema's shape."""
    if schema_version > CURRENT_SCHEMA_VERSION:
        raise UnknownSchemaVersion(event_type, schema_version)
    return data
