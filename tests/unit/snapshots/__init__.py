"""tests/unit/snapshots."""
