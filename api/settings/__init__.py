"""The settings: every variable any `orders` command or part reads, read and checked here
(`config`, `values`). Imports only `api.http` (the limits' and auth's value types)."""
