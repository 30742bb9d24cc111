"""The process: the composition root (`bootstrap`), the Starlette app (`app`), the process's
pages (/healthz, /metrics), the start-up page, and the `orders` CLI. May import every room."""
