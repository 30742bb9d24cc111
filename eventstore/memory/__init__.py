"""The in-memory adapter of the `EventStore` port: the log's rules over Python lists, no I/O."""

from eventstore.memory.store import InMemoryEventStore

__all__ = ["InMemoryEventStore"]
