"""The persistent-subscription engine (competing consumers with server-side checkpoints, with
EventStoreDB's semantics), shared by the embedded and PostgreSQL stores and served over gRPC by
the EventStoreDB test server (tests/support/esdb_server).

- `groups.PersistentGroups`: the port's persistent-subscription methods over one `GroupStorage`;
- `group.GroupRuntime`: one running group (delivery, message timeouts, retries), fed by the
  store's own catch-up subscriptions or another `group.Feed` (the gRPC test server's resolves
  links and applies EventStoreDB's filters);
- `strategy.ConsumerChoice`: which consumer an event goes to (round robin, dispatch to single,
  pinned, pinned by correlation);
- `progress.GroupProgress`: a running group's checkpoint and parking, through its storage;
- `consumer.Consumer`: one connected consumer;
- `storage.GroupStorage`: the small interface a store implements to keep group definitions,
  checkpoints and parked events (SQLite tables for the embedded store, PostgreSQL tables there,
  streams for the gRPC test server, as EventStoreDB keeps them);
- `records`: a group's durable record, its definition (what an update replaces) and how its
  settings are stored.
"""
