"""What the two SQL stores (embedded SQLite, PostgreSQL) share: the `EventStore` port over a SQL
log (`store.SQLEventStore`) and the rows of persistent-subscription groups (`group_rows`).

Each store is that core plus its dialect: how it reaches a connection and runs a read on it, how
its writer commits, what its SQL says (`reads`, `operations`), and how commits are signalled.
"""
