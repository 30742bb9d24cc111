"""The EventStoreDB adapter of the `EventStore` port, through esdbclient's asyncio client:
`store` (the port), `client` (esdbclient extended), `errors` (translated at the boundary),
`mapping` (records and filters), `persistent` (persistent-subscription groups)."""

from eventstore.esdb.store import EventStoreDBStore

__all__ = ["EventStoreDBStore"]
