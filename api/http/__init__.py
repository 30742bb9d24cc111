"""HTTP and websocket plumbing: connection and request limits, budgets, auth, security headers,
the request log, the pages, logging and shutdown. Imports nothing of the other rooms."""
