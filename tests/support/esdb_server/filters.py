"""Server-side event filters for `$all`: what EventStoreDB applies to reads and subscriptions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eventstore.port import RecordedEvent

# Never part of `$all` as clients see it (EventStoreDB keeps these out of the client-facing log).
_HIDDEN_PREFIXES = ("$persistentsubscription-",)
_HIDDEN_STREAMS = frozenset({"$epoch-information"})


def hidden_from_all(event: RecordedEvent) -> bool:
    """Whether `$all` reads leave this event out regardless of filters."""
    stream = event.stream
    if stream in _HIDDEN_STREAMS:
        return True
    return stream.startswith(_HIDDEN_PREFIXES) and stream.endswith(("-checkpoint", "-parked"))


@dataclass(frozen=True, slots=True, kw_only=True)
class AllFilter:
    """A compiled `FilterOptions`: a regex (or prefixes) applied to event types or stream names.

    EventStoreDB applies the regular expression with search semantics (`Regex.IsMatch`), which is
    why the client anchors its expressions itself.
    """

    pattern: re.Pattern[str] | None = None
    prefixes: tuple[str, ...] = ()
    by_stream: bool = False
    window: int = 0  # `max`: events considered per checkpoint window; 0 when `count` was sent
    multiplier: int = 1

    def matches(self, event: RecordedEvent) -> bool:
        """Whether the filter selects the event."""
        subject = event.stream if self.by_stream else event.type
        if self.pattern is not None:
            return self.pattern.search(subject) is not None
        if self.prefixes:
            return subject.startswith(self.prefixes)
        return True

    @property
    def checkpoint_interval(self) -> int:
        """Events considered between two checkpoints of a filtered subscription."""
        return max(1, self.window) * max(1, self.multiplier)


def compile_filter(options: Any) -> AllFilter:
    """Compiles a streams or persistent `FilterOptions` message.

    Raises `re.error` for an invalid expression.
    """
    by_stream = options.WhichOneof("filter") == "stream_identifier"
    expression = options.stream_identifier if by_stream else options.event_type
    pattern = re.compile(expression.regex) if expression.regex else None
    window = options.max if options.WhichOneof("window") == "max" else 0
    return AllFilter(
        pattern=pattern,
        prefixes=tuple(expression.prefix),
        by_stream=by_stream,
        window=window,
        multiplier=options.checkpointIntervalMultiplier or 1,
    )
