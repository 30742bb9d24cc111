"""The embedded event store: one SQLite file, group-committed, held to the same port contract as
EventStoreDB."""

from eventstore.embedded.store import SQLiteEventStore

__all__ = ["SQLiteEventStore"]
