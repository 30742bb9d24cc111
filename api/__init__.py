"""The GraphQL API and the process around it, in four rooms, each importing only those below it:

- `api.http`: HTTP and websocket plumbing (the protocol's limits, budgets, auth, security
  headers, request log, pages, logging, shutdown), nothing of GraphQL;
- `api.settings`: the environment, read and checked in one place;
- `api.graphql`: the strawberry schema (thin resolvers), its endpoint over HTTP and websockets,
  and its rules (cost, permissions, visibility, persisted queries);
- `api.wiring`: the process: the composition root, the Starlette app, /healthz and /metrics,
  the CLI.

`tests/unit/test_import_rules.py` holds the rooms to that order."""
