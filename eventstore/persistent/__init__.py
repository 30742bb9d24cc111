"""The persistent-subscription engine (competing consumers with server-side checkpoints, with
EventStoreDB's semantics), shared by every store that has no server to run it.

- `groups.PersistentGroups`: the port's persistent-subscription methods over one `GroupStorage`;
- `group.GroupRuntime`: one running group (dispatch strategies, message timeouts, retries,
  parking, pinning and checkpoints), fed by the store's own catch-up subscriptions;
- `consumer.Consumer`: one connected consumer;
- `storage.GroupStorage`: the small interface a store implements to keep group definitions,
  checkpoints and parked events (SQLite tables for the embedded store, PostgreSQL tables there);
- `records`: a group's durable record and how its settings are stored.
"""
