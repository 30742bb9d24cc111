"""Abuse suite: the service's holes, kept closed, against the real server."""
