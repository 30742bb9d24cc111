"""When to take a snapshot of an order: every so many events since the newest trusted one."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SNAPSHOT_EVERY = 20
"""Events between snapshots. A load folds at most `every - 1` events past its snapshot, which keeps
a long order's load within about 1.3x a 10-event one's (scripts/bench_load.py); each snapshot is
one more append: up to 4% more server CPU per command on orders amended without end, against 5 to
12% for every 10 (scripts/bench_write.py --amend)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotPolicy:
    """Take a snapshot once `every` events have been appended since the newest trusted one.

    Counting from the last snapshot rather than at multiples of `every` means a missing, deleted
    or stale snapshot is replaced by the next command, however the versions fall.
    """

    every: int = DEFAULT_SNAPSHOT_EVERY

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"snapshot interval must be >= 1, got {self.every}")

    def is_due(self, *, version: int, snapshot_version: int) -> bool:
        """Whether the order at `version`, whose newest trusted snapshot is at
        `snapshot_version` (0: none), should be snapshotted now."""
        return version - snapshot_version >= self.every
