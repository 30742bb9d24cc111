"""The generic event store: the port and its adapters (embedded SQLite, PostgreSQL, EventStoreDB).

- `port`: the `EventStore` and `SubscriptionGroups` protocols, their values and errors;
- `embedded/`, `postgres/`, `esdb/`: the adapters;
- `sql/`: the SQL core the embedded and PostgreSQL stores share (the port's calls, catch-up
  subscriptions, group rows); each of them adds only its dialect;
- `persistent/`: the persistent-subscription engine the embedded and PostgreSQL stores share;
- what the stores without a server share: `streams` (the rules of stream heads and metadata),
  `rows` (a log row as a `RecordedEvent`), `notify` (waking subscribers when the head moves),
  `catchup` (the catch-up subscription loop); and `consuming`, what every consumer of a group does.

It knows streams, revisions, positions and subscriptions, and nothing of orders: it imports neither
`domain` nor `application` (tests/unit/test_import_rules.py holds it to that). The adapters do not
import each other.
"""
