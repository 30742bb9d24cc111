"""The GraphQL schema (`schema/`), its endpoint over HTTP (`view`) and websockets (`ws_view`,
`ws_protocols`), and its rules: cost, permissions, visibility, persisted queries, the command
rate. Imports `api.http` and `api.settings`, never `api.wiring`."""
