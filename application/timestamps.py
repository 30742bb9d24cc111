"""The one spelling of a moment on the wire: events' `occurredAt` and the API's timestamps."""

from __future__ import annotations

from datetime import UTC, datetime


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 in UTC with an explicit offset, microseconds kept."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
