"""The PostgreSQL event store: positions in commit order across every process on one database,
live delivery by LISTEN/NOTIFY, persistent-subscription state in PostgreSQL."""

from eventstore.postgres.store import PostgresEventStore

__all__ = ["PostgresEventStore"]
