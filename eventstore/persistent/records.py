"""A persistent-subscription group's durable record, and how its settings are stored."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson

from eventstore.port import ConsumerStrategy, EventFilter, SubscriptionSettings

ALL_KEY = "$all"
"""The `stream_key` of groups on the global log (no real stream can be called that)."""


def stream_key(stream: str | None) -> str:
    """The key a group's target is stored under."""
    return ALL_KEY if stream is None else stream


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupDefinition:
    """What a group's update replaces: its settings and where it starts (exclusive), by name."""

    group: str
    stream: str | None
    settings: SubscriptionSettings
    start_after: int | None  # resolved at creation or update: None = from the very start


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRecord:
    """A persisted group: its settings, where it starts (exclusive) and its checkpoint."""

    group: str
    stream: str | None
    settings: SubscriptionSettings
    start_after: int | None  # resolved at creation: None = from the very start
    checkpoint: int | None  # everything up to and including this is done


def settings_to_json(settings: SubscriptionSettings) -> bytes:
    """Settings as stored."""
    return orjson.dumps(dataclasses.asdict(settings))


def settings_from_json(raw: bytes | str) -> SubscriptionSettings:
    """Settings as stored, back."""
    value: dict[str, Any] = orjson.loads(raw)
    raw_filter = value.pop("filter")
    return SubscriptionSettings(
        **{
            **value,
            "consumer_strategy": ConsumerStrategy(value["consumer_strategy"]),
            "filter": EventFilter(
                event_types=tuple(raw_filter["event_types"]),
                stream_prefixes=tuple(raw_filter["stream_prefixes"]),
                include_system=bool(raw_filter["include_system"]),
            ),
        }
    )
