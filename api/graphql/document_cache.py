"""The cache of parsed documents, with what was learnt about each (validation errors per rule
set, analyses per variable values), bounded by an estimate of the memory it holds.

A parsed document keeps every token of its text (graphql-core links them for error locations),
so its size follows its tokens, not its characters: about 600 bytes a token was measured
(tracemalloc) on the densest texts (`{a a a ...}`, `__typename` repeated, fragment chains). An
entry weighs `BYTES_PER_TOKEN` x tokens + 2 x characters; the least recently used entries go
once the total passes the budget. Validation results and analyses live in their document's
entry, so they go with it and never keep an evicted document alive.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from graphql import DocumentNode, GraphQLError

BYTES_PER_TOKEN = 600
BYTES_PER_CHARACTER = 2
MAX_ANALYSES = 32
"""Analyses kept per document (one per distinct page-size variables): a client reuses a few."""


@dataclass(slots=True)
class Entry:
    """One cached document and what is known about it."""

    document: DocumentNode
    weight: int
    validations: dict[Hashable, list[GraphQLError]] = field(default_factory=dict)
    analyses: OrderedDict[Hashable, object] = field(default_factory=OrderedDict)

    def remember_analysis(self, key: Hashable, analysis: object) -> None:
        """Keep an analysis, dropping the oldest past `MAX_ANALYSES`."""
        self.analyses[key] = analysis
        if len(self.analyses) > MAX_ANALYSES:
            self.analyses.popitem(last=False)


def detach_tokens(document: DocumentNode) -> int:
    """Unlink the document's tokens backwards, and count them (0 when parsed without
    locations).

    The lexer links its tokens both ways, so a parsed document is one large reference cycle:
    dropped, it waits for a full garbage collection (rare in a long-lived, tuned process) while
    its memory stays taken. Only the lexer reads `prev`; unlinked, the document is freed as soon
    as the cache and the requests using it let go."""
    loc = document.loc
    token = None if loc is None else loc.start_token
    count = 0
    while token is not None:
        count += 1
        token.prev = None
        token = token.next
    return count


def weight_of(query: str, document: DocumentNode) -> int:
    """The estimated bytes a cached document holds (and its tokens unlinked, see
    `detach_tokens`)."""
    return BYTES_PER_TOKEN * detach_tokens(document) + BYTES_PER_CHARACTER * len(query)


class DocumentCache:
    """Query texts to their entries, least recently used first out, within `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, query: str) -> Entry | None:
        """The entry of `query`, now the most recently used; None when not held."""
        entry = self._entries.get(query)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(query)
        return entry

    def put(self, query: str, document: DocumentNode) -> Entry:
        """Hold `document` as the entry of `query`, evicting the least recently used."""
        entry = Entry(document=document, weight=weight_of(query, document))
        old = self._entries.pop(query, None)
        if old is not None:
            self.bytes -= old.weight
        if entry.weight > self.max_bytes:
            return entry  # never held: it alone is over the budget
        self._entries[query] = entry
        self.bytes += entry.weight
        while self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.weight
        return entry
