"""Snapshots: a cache of the fold that never changes a result."""
