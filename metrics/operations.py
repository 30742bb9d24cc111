"""Bounded operation names for metric labels.

Operation names are chosen by clients: labelled as sent, one client could create a series per
request. A name becomes a label only once an operation of that name has run without error (it
was parsed, validated and executed), and only the first `cap` such names per process; every
other name is counted as `other`, an operation without a name as `anonymous`."""

from __future__ import annotations

import re
from typing import Final

DEFAULT_CAP: Final = 100
OTHER: Final = "other"
ANONYMOUS: Final = "anonymous"
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")


class OperationNames:
    """The operation names this process has seen succeed, up to `cap` of them."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self._cap = cap
        self._seen: set[str] = set()

    def label(self, name: str, outcome: str) -> str:
        """The label for an operation called `name` that ended with `outcome`."""
        if not name:
            return ANONYMOUS
        if name in self._seen:
            return name
        if outcome == "ok" and len(self._seen) < self._cap and _NAME.fullmatch(name):
            self._seen.add(name)
            return name
        return OTHER
