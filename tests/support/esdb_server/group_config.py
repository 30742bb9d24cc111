"""Persistent-subscription group settings: parsed from Create/Update requests, validated as
EventStoreDB validates them, stored in `$persistentSubscriptionConfig` as `PersistentConfig1`."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .convert import commit_of
from .filters import AllFilter

CONFIG_STREAM = "$persistentSubscriptionConfig"
CONFIG_EVENT_TYPE = "PersistentConfig1"
STRATEGIES = ("DispatchToSingle", "RoundRobin", "Pinned", "PinnedByCorrelation")
_STRATEGY_BY_ENUM = {0: "DispatchToSingle", 1: "RoundRobin", 2: "Pinned"}


class InvalidSettings(ValueError):
    """Settings EventStoreDB refuses (it answers INTERNAL)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupSettings:
    """Everything a group was created or updated with. Start points: None = start, -1 = end,
    otherwise a revision (stream groups) or a commit position (`$all` groups), inclusive."""

    stream: str | None
    group: str
    start_from: int | None = None
    resolve_links: bool = False
    extra_statistics: bool = False
    max_retry_count: int = 10
    min_checkpoint_count: int = 10
    max_checkpoint_count: int = 1000
    max_subscriber_count: int = 0
    live_buffer_size: int = 500
    read_batch_size: int = 20
    history_buffer_size: int = 500
    message_timeout_ms: int = 30_000
    checkpoint_after_ms: int = 2_000
    consumer_strategy: str = "RoundRobin"
    filter_regex: str = ""
    filter_prefixes: tuple[str, ...] = ()
    filter_by_stream: bool = False
    filter_window: int = 0
    filter_multiplier: int = 1
    has_filter: bool = False

    @property
    def source(self) -> str:
        """`$all` or the stream name, as in subscription ids."""
        return "$all" if self.stream is None else self.stream

    @property
    def start_text(self) -> str:
        """`start_from` as GetInfo reports it."""
        if self.stream is not None:
            return str(0 if self.start_from is None else self.start_from)
        commit = 0 if self.start_from is None else self.start_from
        return f"C:{commit}/P:{commit}"

    def compiled_filter(self) -> AllFilter | None:
        """The `$all` filter, None when there is none."""
        if not self.has_filter:
            return None
        return AllFilter(
            pattern=re.compile(self.filter_regex) if self.filter_regex else None,
            prefixes=self.filter_prefixes,
            by_stream=self.filter_by_stream,
            window=self.filter_window,
            multiplier=self.filter_multiplier,
        )

    def to_json(self) -> dict[str, Any]:
        """A config entry."""
        entry = dataclasses.asdict(self)
        entry["filter_prefixes"] = list(self.filter_prefixes)
        return entry

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> GroupSettings:
        """The inverse of `to_json`."""
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in entry.items() if key in known}
        values["filter_prefixes"] = tuple(values.get("filter_prefixes", ()))
        return cls(**values)


def settings_from_request(
    options: Any, *, update: bool, previous: GroupSettings | None
) -> GroupSettings:
    """Reads CreateReq/UpdateReq options; raises `InvalidSettings`."""
    target = options.WhichOneof("stream_option")
    if target == "stream":
        stream: str | None = options.stream.stream_identifier.stream_name.decode("utf8")
        kind = options.stream.WhichOneof("revision_option")
        start = options.stream.revision if kind == "revision" else (-1 if kind == "end" else None)
    elif target == "all":
        stream = None
        kind = options.all.WhichOneof("all_option")
        start = (
            options.all.position.commit_position
            if kind == "position"
            else (-1 if kind == "end" else None)
        )
    else:  # clients before 21.10 sent only stream_identifier and settings.revision
        stream = options.stream_identifier.stream_name.decode("utf8")
        start = options.settings.revision or None
    s = options.settings
    if update:
        strategy = _STRATEGY_BY_ENUM.get(s.named_consumer_strategy, "RoundRobin")
    else:
        strategy = s.consumer_strategy or _STRATEGY_BY_ENUM.get(s.named_consumer_strategy, "")
    timeout_ms = (
        s.message_timeout_ms
        if s.WhichOneof("message_timeout") != "message_timeout_ticks"
        else s.message_timeout_ticks // 10_000
    )
    checkpoint_ms = (
        s.checkpoint_after_ms
        if s.WhichOneof("checkpoint_after") != "checkpoint_after_ticks"
        else s.checkpoint_after_ticks // 10_000
    )
    filter_fields: dict[str, Any] = {}
    if previous is not None:  # updates cannot change the filter
        filter_fields = {
            name: getattr(previous, name)
            for name in (
                "filter_regex",
                "filter_prefixes",
                "filter_by_stream",
                "filter_window",
                "filter_multiplier",
                "has_filter",
            )
        }
    elif stream is None and options.all.WhichOneof("filter_option") == "filter":
        f = options.all.filter
        by_stream = f.WhichOneof("filter") == "stream_identifier"
        expression = f.stream_identifier if by_stream else f.event_type
        try:
            re.compile(expression.regex)
        except re.error as problem:
            raise InvalidSettings(f"Invalid filter: {problem}") from problem
        filter_fields = {
            "filter_regex": expression.regex,
            "filter_prefixes": tuple(expression.prefix),
            "filter_by_stream": by_stream,
            "filter_window": f.max if f.WhichOneof("window") == "max" else 0,
            "filter_multiplier": f.checkpointIntervalMultiplier or 1,
            "has_filter": True,
        }
    settings = GroupSettings(
        stream=stream,
        group=options.group_name,
        start_from=start,
        resolve_links=s.resolve_links,
        extra_statistics=s.extra_statistics,
        max_retry_count=s.max_retry_count,
        min_checkpoint_count=s.min_checkpoint_count,
        max_checkpoint_count=s.max_checkpoint_count,
        max_subscriber_count=s.max_subscriber_count,
        live_buffer_size=s.live_buffer_size,
        read_batch_size=s.read_batch_size,
        history_buffer_size=s.history_buffer_size,
        message_timeout_ms=timeout_ms,
        checkpoint_after_ms=checkpoint_ms,
        consumer_strategy=strategy,
        **filter_fields,
    )
    validate(settings)
    return settings


def validate(settings: GroupSettings) -> None:
    """EventStoreDB's checks on group settings."""
    if settings.consumer_strategy not in STRATEGIES:
        raise InvalidSettings(f"Unknown consumer strategy '{settings.consumer_strategy}'.")
    if settings.read_batch_size >= settings.history_buffer_size:
        raise InvalidSettings("Read batch size should be less than history buffer size.")
    numbers = (
        settings.max_retry_count,
        settings.min_checkpoint_count,
        settings.max_checkpoint_count,
        settings.max_subscriber_count,
        settings.live_buffer_size,
        settings.read_batch_size,
        settings.history_buffer_size,
        settings.message_timeout_ms,
        settings.checkpoint_after_ms,
    )
    if any(value < 0 for value in numbers):
        raise InvalidSettings("Settings must not be negative.")
    if settings.max_checkpoint_count < settings.min_checkpoint_count:
        raise InvalidSettings("Max checkpoint count should be at least min checkpoint count.")


def config_document(groups: list[tuple[GroupSettings, int | None]]) -> bytes:
    """The `PersistentConfig1` event data for the current set of groups, each with the exclusive
    start point the engine fixed at its creation."""
    document = {
        "version": "2",
        "updated": datetime.now(UTC).isoformat(),
        "updatedBy": "admin",
        "entries": [
            {**settings.to_json(), "start_after": start_after} for settings, start_after in groups
        ],
    }
    return json.dumps(document).encode("utf8")


def parse_config(data: bytes) -> list[tuple[GroupSettings, int | None]]:
    """The groups of a `PersistentConfig1` event, each with its start point."""
    document = json.loads(data)
    return [
        (GroupSettings.from_json(entry), entry.get("start_after"))
        for entry in document.get("entries", [])
    ]


def checkpoint_text(settings: GroupSettings, point: int) -> str:
    """How a checkpoint is written and reported: a revision, or `C:x/P:x` for `$all`."""
    if settings.stream is not None:
        return str(point - 1)
    return f"C:{commit_of(point)}/P:{commit_of(point)}"
