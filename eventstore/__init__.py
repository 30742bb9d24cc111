"""The generic event store: the port and its adapters (embedded SQLite, PostgreSQL, EventStoreDB),
and `persistent`, the persistent-subscription engine the embedded and PostgreSQL stores share.

It knows streams, revisions, positions and subscriptions, and nothing of orders: it imports neither
`domain` nor `application` (tests/unit/test_import_rules.py holds it to that).
"""
