"""Lua scripts of the Redis view store (read with importlib.resources)."""
