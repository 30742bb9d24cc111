"""End-to-end tests: the real server over real HTTP and websocket connections."""
